//! A device written by an earlier release opens with all its data: each
//! image in tests/fixtures was written by that format version's `strata`
//! (tests/fixtures/make_image.py) and holds a checkpoint, records after
//! it, inline, chunked and deduplicated objects, overwrites, deletes, a
//! completed multipart upload and one still open; version 6's also holds
//! versions, delete markers, tags, object lock and bucket settings. Every
//! object and version must come back byte for byte, as must the open
//! upload; the device must then take writes in the new format, move to it,
//! and open again.

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

fn image(name: &str) -> Vec<u8> {
    let compressed = std::fs::read(fixture(&format!("{name}.img.zst"))).expect("fixture image");
    let mut out = Vec::new();
    zstd::stream::Decoder::new(&compressed[..])
        .expect("zstd")
        .read_to_end(&mut out)
        .expect("decompress");
    out
}

fn expected(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixture(&format!("{name}.json"))).expect("fixture manifest");
    serde_json::from_str(&text).expect("manifest json")
}

/// Every object the manifest names, and nothing else, with its bytes
/// (MD5), ETag, content type and metadata; and the open upload's parts.
fn assert_holds_the_fixture(store: &lsm::Store, name: &str) {
    let want = expected(name);
    let buckets = want["buckets"].as_object().expect("buckets");
    let versioned = want["versions"].as_object().cloned().unwrap_or_default();
    let names: Vec<String> = store.list_buckets().into_iter().map(|b| b.name).collect();
    let want_names: std::collections::BTreeSet<&String> =
        buckets.keys().chain(versioned.keys()).collect();
    assert_eq!(
        names.iter().collect::<std::collections::BTreeSet<_>>(),
        want_names
    );
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
                bytes.extend(store.read_chunk(chunk, None).expect("part readable"));
            }
            assert_eq!(hex::encode(md5_of(&bytes)), part.etag);
        }
    }
    for (bucket, listed) in &versioned {
        assert_holds_the_versions(store, bucket, listed.as_array().expect("versions"));
    }
    if let Some(settings) = want["settings"].as_object() {
        assert_holds_the_settings(store, settings);
    }
    assert_eq!(store.space_recount(), Vec::<String>::new());
}

/// Every version of a bucket, newest first within a key, with its bytes,
/// tags, retention mode and legal hold.
fn assert_holds_the_versions(store: &lsm::Store, bucket: &str, want: &[serde_json::Value]) {
    let page = store
        .list_versions(
            bucket,
            &lsm::VersionQuery {
                max_keys: usize::MAX,
                ..Default::default()
            },
        )
        .expect("list versions");
    assert_eq!(page.versions.len(), want.len(), "{bucket}");
    for (listed, v) in page.versions.iter().zip(want) {
        let e = &listed.entry;
        let id = if e.null_version {
            "null".to_string()
        } else {
            format!("{:016x}", e.lsn)
        };
        let what = format!("{bucket}/{} {id}", listed.key);
        assert_eq!(listed.key, v["key"].as_str().unwrap(), "{what}");
        assert_eq!(id, v["version_id"].as_str().unwrap(), "{what}");
        assert_eq!(
            e.delete_marker,
            v["delete_marker"].as_bool().unwrap(),
            "{what}"
        );
        if !e.delete_marker {
            let mut bytes = Vec::new();
            for chunk in &e.chunks {
                bytes.extend(store.read_chunk(chunk, None).expect("version readable"));
            }
            assert_eq!(bytes.len() as u64, v["size"].as_u64().unwrap(), "{what}");
            assert_eq!(
                hex::encode(md5_of(&bytes)),
                v["md5"].as_str().unwrap(),
                "{what}"
            );
        }
        let tags: BTreeMap<String, String> = e.meta.tags().iter().cloned().collect();
        let want_tags: BTreeMap<String, String> = v["tags"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        assert_eq!(tags, want_tags, "{what}");
        let mode = e.meta.retention().map(|r| match r.mode {
            lsm::LockMode::Governance => "GOVERNANCE",
            lsm::LockMode::Compliance => "COMPLIANCE",
        });
        assert_eq!(mode, v["retention"].as_str(), "{what}");
        assert_eq!(
            e.meta.legal_hold(),
            v["legal_hold"].as_bool().unwrap(),
            "{what}"
        );
    }
}

fn assert_holds_the_settings(
    store: &lsm::Store,
    settings: &serde_json::Map<String, serde_json::Value>,
) {
    for (bucket, want) in settings {
        let config = store.bucket_config(bucket).expect("bucket config");
        let versioning = match config.versioning {
            lsm::VersioningState::Unversioned => "Unversioned",
            lsm::VersioningState::Enabled => "Enabled",
            lsm::VersioningState::Suspended => "Suspended",
        };
        assert_eq!(versioning, want["versioning"].as_str().unwrap(), "{bucket}");
        if let Some(tags) = want["tags"].as_object() {
            let have: BTreeMap<String, String> = config
                .tags
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect();
            let want: BTreeMap<String, String> = tags
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            assert_eq!(have, want, "{bucket}");
        }
        if let Some(rules) = want["lifecycle_rules"].as_u64() {
            let lifecycle = config.lifecycle.as_ref().expect("lifecycle rules");
            assert_eq!(lifecycle.rules.len() as u64, rules, "{bucket}");
        }
        if let Some(mode) = want["default_retention"].as_str() {
            let default = config
                .object_lock
                .as_ref()
                .and_then(|l| l.default_retention)
                .expect("default retention");
            let have = match default.mode {
                lsm::LockMode::Governance => "GOVERNANCE",
                lsm::LockMode::Compliance => "COMPLIANCE",
            };
            assert_eq!(have, mode, "{bucket}");
        }
    }
}

fn md5_of(data: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(data).into()
}

/// Opens a fixture image written by format `version`: its checkpoint loads,
/// the records after it replay, and it holds everything its manifest names.
fn open_fixture(bytes: &[u8], name: &str, version: u32) -> (Arc<FaultyDevice>, lsm::Store) {
    let dev = Arc::new(FaultyDevice::from_image(
        bytes.to_vec(),
        FaultConfig::default(),
    ));
    let sb = lsm::read_superblock(dev.as_ref()).expect("superblock");
    assert_eq!(sb.format_version, version, "the fixture's format");
    let (store, report) = open(dev.clone());
    assert!(report.checkpoint_used, "the checkpoint loads: {report:?}");
    assert!(
        report.scan.records_applied > 0,
        "records after it replay: {report:?}"
    );
    assert_holds_the_fixture(&store, name);
    (dev, store)
}

#[test]
fn a_version_5_device_opens_with_all_its_data_and_moves_to_the_current_format() {
    let bytes = image("format-v5");
    let (dev, store) = open_fixture(&bytes, "format-v5", 5);

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
    let dev = FaultyDevice::from_image(image("format-v5"), FaultConfig::default());
    let report = recovery::fsck::check(&dev, &()).expect("fsck");
    assert!(report.clean(), "{report:?}");
    assert_eq!(report.objects_checked, 9);
    assert_eq!(lsm::read_superblock(&dev).unwrap().format_version, 5);
}

#[test]
fn a_version_6_device_opens_with_all_its_versions_and_moves_to_the_current_format() {
    let (dev, store) = open_fixture(&image("format-v6"), "format-v6", 6);
    let rt = runtime();
    rt.block_on(async {
        put(&store, "gamma", "written-after-upgrade", b"new format")
            .await
            .unwrap();
        assert_eq!(store.upgrade_format().await.unwrap(), Some(6));
    });
    store.shutdown();
    drop(store);
    let sb = lsm::read_superblock(dev.as_ref()).expect("superblock");
    assert_eq!(sb.format_version, lsm::format::FORMAT_VERSION);
    let (again, report) = open(dev.clone() as Arc<dyn BlockDevice>);
    assert!(report.checkpoint_used);
    assert_eq!(
        read_all(&again, "gamma", "written-after-upgrade").unwrap(),
        b"new format"
    );
    again.shutdown();
    drop(again);
    let fsck = recovery::fsck::check(dev.as_ref(), &()).expect("fsck");
    assert!(fsck.clean(), "{fsck:?}");
}

/// fsck reads a version 6 device as it is, without changing it.
#[test]
fn fsck_checks_a_version_6_device() {
    let dev = FaultyDevice::from_image(image("format-v6"), FaultConfig::default());
    let report = recovery::fsck::check(&dev, &()).expect("fsck");
    assert!(report.clean(), "{report:?}");
    assert_eq!(lsm::read_superblock(&dev).unwrap().format_version, 6);
}

/// A version 7 device keeps its accounts, users, custom policies and
/// access settings: the keys a deployment hands out must not stop working
/// across an upgrade.
fn assert_holds_the_access(store: &lsm::Store, want: &serde_json::Value) {
    let public_read = |grants: &[lsm::format::Grant]| {
        grants.iter().any(|g| {
            g.grantee == lsm::format::Grantee::AllUsers
                && g.permission == lsm::format::Permission::Read
        })
    };
    store.with_iam(|iam| {
        let tenant = iam
            .accounts()
            .find(|a| a.name == "tenant")
            .expect("the second account");
        let (holder, _) = iam
            .key(want["tenant_access_key"].as_str().unwrap())
            .expect("the second account's root key");
        assert_eq!(
            holder,
            lsm::KeyHolder::Root {
                account: tenant.id.clone()
            }
        );
        let user = iam
            .user(lsm::format::FIRST_ACCOUNT_ID, "reader")
            .expect("the user");
        let reader = &want["users"]["reader"];
        let policies: Vec<&str> = reader["policies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        assert_eq!(user.policies, policies);
        assert!(user.enabled);
        assert!(iam.key(reader["access_key"].as_str().unwrap()).is_some());
        assert!(iam
            .policy(lsm::format::FIRST_ACCOUNT_ID, "read-shared")
            .is_some());
    });
    let bucket = want["bucket"].as_str().unwrap();
    let config = store.bucket_config(bucket).expect("the shared bucket");
    assert!(config.policy.is_some(), "its policy");
    assert!(public_read(&config.grants()), "its ACL");
    assert_eq!(config.cors.as_ref().map(|c| c.len()), Some(1), "its CORS");
    let object = store
        .object(bucket, want["object_acl"]["key"].as_str().unwrap())
        .expect("the object");
    let acl = object.meta.acl().expect("the object's ACL");
    assert!(public_read(&acl.grants));
}

#[test]
fn a_version_7_device_opens_with_its_accounts_and_access_settings() {
    let (dev, store) = open_fixture(&image("format-v7"), "format-v7", 7);
    assert_holds_the_access(&store, &expected("format-v7")["access"]);
    let rt = runtime();
    rt.block_on(async {
        put(&store, "shared", "written-after-upgrade", b"new format")
            .await
            .unwrap();
        assert_eq!(store.upgrade_format().await.unwrap(), Some(7));
    });
    store.shutdown();
    drop(store);
    let sb = lsm::read_superblock(dev.as_ref()).expect("superblock");
    assert_eq!(sb.format_version, lsm::format::FORMAT_VERSION);
    let (again, report) = open(dev.clone() as Arc<dyn BlockDevice>);
    assert!(report.checkpoint_used);
    assert_holds_the_access(&again, &expected("format-v7")["access"]);
    assert_eq!(
        read_all(&again, "shared", "written-after-upgrade").unwrap(),
        b"new format"
    );
    again.shutdown();
    drop(again);
    let fsck = recovery::fsck::check(dev.as_ref(), &()).expect("fsck");
    assert!(fsck.clean(), "{fsck:?}");
}
