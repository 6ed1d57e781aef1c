//! Golden bytes: the encoding of every record kind, the superblock and the
//! segment header is pinned here, so that a format change is deliberate;
//! and format version 5's payloads (the golden strings of that release)
//! must still decode, into the current form.

use super::*;
use crate::lifecycle::{Expiration, LifecycleConfig, LifecycleRule, RuleFilter};

fn record_bytes(kind: RecordKind, flags: u8, payload: &[u8]) -> String {
    let header = RecordHeader {
        kind,
        flags,
        payload_len: payload.len() as u32,
        lsn: 42,
    };
    let mut out = Vec::new();
    header.encode_with(&DEVICE, payload, &mut out);
    assert!(RecordHeader::verify(&DEVICE, &out));
    assert_eq!(RecordHeader::peek(&out), Some(header));
    hex::encode(out)
}

const DEVICE: [u8; 16] = [9; 16];

/// A record written to one format of a device fails its crc on
/// another: what an earlier store left never passes for a record.
#[test]
fn a_record_verifies_only_on_its_own_device() {
    let header = RecordHeader {
        kind: RecordKind::Delete,
        flags: 0,
        payload_len: 3,
        lsn: 7,
    };
    let mut out = Vec::new();
    header.encode_with(&DEVICE, b"abc", &mut out);
    assert!(RecordHeader::verify(&DEVICE, &out));
    let mut other = DEVICE;
    other[15] ^= 1;
    assert!(!RecordHeader::verify(&other, &out));
    assert_eq!(RecordHeader::peek(&out), Some(header));
}

fn meta() -> ObjectMeta {
    ObjectMeta {
        size: 3,
        etag: "e".into(),
        last_modified_ms: 7,
        content_type: Some("t".into()),
        user_metadata: vec![("k".into(), "v".into())],
        checksums: vec![("CRC32".into(), "c".into())],
        ..Default::default()
    }
}

fn chunk() -> ChunkRef {
    ChunkRef {
        location: Location {
            segment: 1,
            offset: 4096,
            len: 68,
        },
        raw_len: 3,
        hash: [7; 32],
    }
}

fn put(condition: Condition) -> ObjectPut {
    ObjectPut {
        bucket: "b".into(),
        key: "k".into(),
        meta: meta(),
        chunks: vec![chunk()],
        condition,
        inline: vec![],
        inline_flags: 0,
    }
}

fn locked_meta() -> ObjectMeta {
    let mut meta = meta();
    meta.set_tags(vec![("t".into(), "v".into())]);
    meta.set_retention(Some(Retention {
        mode: LockMode::Compliance,
        until_ms: 9,
    }));
    meta.set_legal_hold(true);
    meta.set_parts(vec![PartSummary {
        number: 1,
        size: 3,
        checksum: Some("x".into()),
    }]);
    meta.set_checksum_kind(Some(("SHA256".into(), ChecksumType::Composite)));
    meta.set_upload_id(Some("u".into()));
    meta
}

/// Pins the encoding of every record kind written today. If this fails,
/// the on-disk format changed: bump FORMAT_VERSION, keep the old kinds
/// readable, and update the strings on purpose.
fn bucket_setting(setting: BucketSetting) -> Record {
    Record::BucketConfig(BucketConfigChange {
        bucket: "b".into(),
        at_ms: 9,
        setting,
    })
}

fn iam(change: IamChange) -> Record {
    Record::Iam(IamUpdate { at_ms: 9, change })
}

fn access_key() -> AccessKey {
    AccessKey {
        access_key: "a".into(),
        sealed_secret: vec![5, 6],
        enabled: true,
        created_ms: 3,
    }
}

#[test]
fn golden_record_bytes() {
    let header = "43525453";
    let lifecycle = LifecycleConfig {
        rules: vec![LifecycleRule {
            id: "r".into(),
            enabled: true,
            prefix: None,
            filter: Some(RuleFilter {
                prefix: Some("p".into()),
                ..Default::default()
            }),
            expiration: Some(Expiration {
                days: Some(2),
                ..Default::default()
            }),
            noncurrent_expiration: None,
            abort_incomplete_upload_days: Some(3),
        }],
    };
    let cases: Vec<(Record, &str)> = vec![
        (
            Record::Object(put(Condition::IfNoneMatch(ETagMatch::Any))),
            "01000000000000006201000000000000006b0300000000000000010000000000000065070000000000000001010000000000
             0000740000000000010000000000000001000000000000006b01000000000000007601000000000000000500000000000000
             4352433332010000000000000063000001000000000000000100000000100000440000000300000007070707070707070707
             070707070707070707070707070707070707070707070200000000000000000000000000000000",
        ),
        (
            Record::Object(ObjectPut {
                meta: locked_meta(),
                ..put(Condition::IfMatch(ETagMatch::Is("e".into())))
            }),
            "01000000000000006201000000000000006b0300000000000000010000000000000065070000000000000001010000000000
             0000740000000000010000000000000001000000000000006b01000000000000007601000000000000000500000000000000
             4352433332010000000000000063000106000000000000000000000001000000000000000100000000000000740100000000
             0000007601000000010000000900000000000000020000000300000001000000000000000100000003000000000000000101
             0000000000000078040000000600000000000000534841323536000000000500000001000000000000007501000000000000
             0001000000001000004400000003000000070707070707070707070707070707070707070707070707070707070707070701
             00000001000000010000000000000065000000000000000000",
        ),
        (
            Record::Delete(Delete {
                bucket: "b".into(),
                key: "k".into(),
                version: VersionRef::Lsn(5),
                at_ms: 9,
                bypass_governance: true,
                condition: DeleteCondition {
                    etag: Some(ETagMatch::Is("e".into())),
                    size: Some(3),
                    last_modified_s: None,
                    current_lsn: Some(4),
                },
            }),
            "01000000000000006201000000000000006b0200000005000000000000000900000000000000010101000000010000000000
             00006501030000000000000000010400000000000000",
        ),
        (
            Record::BucketCreate(BucketCreate {
                bucket: "b".into(),
                at_ms: 9,
                settings: vec![BucketSetting::ObjectLock(ObjectLockConfig::default())],
            }),
            "010000000000000062090000000000000001000000000000000100000000",
        ),
        (
            Record::BucketDelete(BucketOp {
                bucket: "b".into(),
                at_ms: 9,
            }),
            "0100000000000000620900000000000000",
        ),
        (
            Record::BucketConfig(BucketConfigChange {
                bucket: "b".into(),
                at_ms: 9,
                setting: BucketSetting::Versioning(VersioningState::Suspended),
            }),
            "01000000000000006209000000000000000000000002000000",
        ),
        (
            Record::BucketConfig(BucketConfigChange {
                bucket: "b".into(),
                at_ms: 9,
                setting: BucketSetting::ObjectLock(ObjectLockConfig {
                    default_retention: Some(DefaultRetention {
                        mode: LockMode::Governance,
                        days: Some(1),
                        years: None,
                    }),
                }),
            }),
            "0100000000000000620900000000000000010000000100000000010100000000",
        ),
        (
            Record::BucketConfig(BucketConfigChange {
                bucket: "b".into(),
                at_ms: 9,
                setting: BucketSetting::Tags(Some(vec![("a".into(), "b".into())])),
            }),
            "010000000000000062090000000000000002000000010100000000000000010000000000000061010000000000000062",
        ),
        (
            Record::BucketConfig(BucketConfigChange {
                bucket: "b".into(),
                at_ms: 9,
                setting: BucketSetting::Lifecycle(Some(lifecycle)),
            }),
            "0100000000000000620900000000000000030000000101000000000000000100000000000000720100010101000000000000
             0070000000000101020000000000000103000000",
        ),
        (
            Record::VersionUpdate(VersionUpdate {
                bucket: "b".into(),
                key: "k".into(),
                version: VersionRef::Null,
                at_ms: 9,
                change: VersionChange::Retention {
                    retention: Some(Retention {
                        mode: LockMode::Governance,
                        until_ms: 10,
                    }),
                    bypass_governance: false,
                },
            }),
            "01000000000000006201000000000000006b0100000009000000000000000100000001000000000a0000000000000000",
        ),
        (
            Record::VersionUpdate(VersionUpdate {
                bucket: "b".into(),
                key: "k".into(),
                version: VersionRef::Current,
                at_ms: 9,
                change: VersionChange::Tags(vec![("a".into(), "b".into())]),
            }),
            "01000000000000006201000000000000006b0000000009000000000000000000000001000000000000000100000000000000
             61010000000000000062",
        ),
        (
            Record::VersionUpdate(VersionUpdate {
                bucket: "b".into(),
                key: "k".into(),
                version: VersionRef::Lsn(3),
                at_ms: 9,
                change: VersionChange::LegalHold(true),
            }),
            "01000000000000006201000000000000006b02000000030000000000000009000000000000000200000001",
        ),
        (
            Record::VersionUpdate(VersionUpdate {
                bucket: "b".into(),
                key: "k".into(),
                version: VersionRef::Lsn(3),
                at_ms: 9,
                change: VersionChange::Quarantine("q".into()),
            }),
            "01000000000000006201000000000000006b0200000003000000000000000900000000000000030000000100000000000000
             71",
        ),
        (
            Record::MultipartCreate(MultipartCreate {
                upload_id: "u".into(),
                bucket: "b".into(),
                key: "k".into(),
                meta: locked_meta(),
                initiated_ms: 5,
            }),
            "01000000000000007501000000000000006201000000000000006b0300000000000000010000000000000065070000000000
             0000010100000000000000740000000000010000000000000001000000000000006b01000000000000007601000000000000
             0005000000000000004352433332010000000000000063000106000000000000000000000001000000000000000100000000
             0000007401000000000000007601000000010000000900000000000000020000000300000001000000000000000100000003
             0000000000000001010000000000000078040000000600000000000000534841323536000000000500000001000000000000
             00750500000000000000",
        ),
        (
            Record::MultipartPart(MultipartPart {
                upload_id: "u".into(),
                part_number: 2,
                size: 3,
                etag: "e".into(),
                last_modified_ms: 4,
                checksums: vec![],
                chunks: vec![],
            }),
            "010000000000000075020000000300000000000000010000000000000065040000000000000000000000000000000000000000000000",
        ),
        (
            Record::MultipartComplete(MultipartComplete {
                upload_id: "u".into(),
                object: put(Condition::Always),
            }),
            "01000000000000007501000000000000006201000000000000006b0300000000000000010000000000000065070000000000
             0000010100000000000000740000000000010000000000000001000000000000006b01000000000000007601000000000000
             0005000000000000004352433332010000000000000063000001000000000000000100000000100000440000000300000007
             0707070707070707070707070707070707070707070707070707070707070700000000000000000000000000",
        ),
        (
            Record::MultipartAbort(MultipartAbort {
                upload_id: "u".into(),
            }),
            "010000000000000075",
        ),
        (
            Record::Checkpoint(CheckpointPart {
                previous: None,
                part_index: 1,
                bytes: vec![7],
            }),
            "0001000000010000000000000007",
        ),
        // Format 7.
        (bucket_setting(BucketSetting::Owner("1".into())), "010000000000000062090000000000000004000000010000000000000031"),
        (bucket_setting(BucketSetting::Policy(Some("{}".into()))), "0100000000000000620900000000000000050000000102000000000000007b7d"),
        (
            bucket_setting(BucketSetting::Acl(vec![
                Grant {
                    grantee: Grantee::Account("1".into()),
                    permission: Permission::WriteAcp,
                },
                Grant {
                    grantee: Grantee::AllUsers,
                    permission: Permission::Read,
                },
            ])),
            "0100000000000000620900000000000000060000000200000000000000000000000100000000000000310400000001000000
             01000000",
        ),
        (
            bucket_setting(BucketSetting::Cors(Some(vec![CorsRule {
                id: Some("i".into()),
                allowed_origins: vec!["o".into()],
                allowed_methods: vec!["PUT".into()],
                allowed_headers: vec!["h".into()],
                expose_headers: vec!["x".into()],
                max_age_s: Some(5),
            }]))),
            "0100000000000000620900000000000000070000000101000000000000000101000000000000006901000000000000000100
             0000000000006f01000000000000000300000000000000505554010000000000000001000000000000006801000000000000
             000100000000000000780105000000",
        ),
        (
            bucket_setting(BucketSetting::Ownership(Some(
                ObjectOwnership::BucketOwnerPreferred,
            ))),
            "0100000000000000620900000000000000080000000101000000",
        ),
        (
            bucket_setting(BucketSetting::PublicAccessBlock(Some(PublicAccessBlock {
                block_public_acls: true,
                ignore_public_acls: false,
                block_public_policy: true,
                restrict_public_buckets: false,
            }))),
            "0100000000000000620900000000000000090000000101000100",
        ),
        (
            Record::VersionUpdate(VersionUpdate {
                bucket: "b".into(),
                key: "k".into(),
                version: VersionRef::Lsn(3),
                at_ms: 9,
                change: VersionChange::Acl(Some(ObjectAcl {
                    owner: "1".into(),
                    grants: vec![Grant {
                        grantee: Grantee::AuthenticatedUsers,
                        permission: Permission::FullControl,
                    }],
                })),
            }),
            "01000000000000006201000000000000006b0200000003000000000000000900000000000000040000000101000000000000
             003101000000000000000200000000000000",
        ),
        (
            iam(IamChange::Account(Account {
                id: "1".into(),
                name: "n".into(),
                created_ms: 2,
                root_keys: vec![access_key()],
            })),
            "09000000000000000000000001000000000000003101000000000000006e0200000000000000010000000000000001000000
             000000006102000000000000000506010300000000000000",
        ),
        (
            iam(IamChange::User(User {
                account: "1".into(),
                name: "u".into(),
                enabled: false,
                policies: vec!["p".into()],
                keys: vec![access_key()],
                created_ms: 2,
            })),
            "0900000000000000010000000100000000000000310100000000000000750001000000000000000100000000000000700100
             000000000000010000000000000061020000000000000005060103000000000000000200000000000000",
        ),
        (
            iam(IamChange::UserRemove {
                account: "1".into(),
                name: "u".into(),
            }),
            "090000000000000002000000010000000000000031010000000000000075",
        ),
        (
            iam(IamChange::Policy {
                account: "1".into(),
                name: "p".into(),
                document: "{}".into(),
            }),
            "09000000000000000300000001000000000000003101000000000000007002000000000000007b7d",
        ),
        (
            iam(IamChange::PolicyRemove {
                account: "1".into(),
                name: "p".into(),
            }),
            "090000000000000004000000010000000000000031010000000000000070",
        ),
    ];
    let mut mismatches = Vec::new();
    for (record, payload_hex) in cases {
        let payload = record.encode_payload();
        let expected: String = payload_hex.split_whitespace().collect();
        if hex::encode(&payload) != expected {
            mismatches.push(format!("{:?}: {}", record.kind(), hex::encode(&payload)));
        }
        assert_eq!(Record::decode(record.kind(), &payload).unwrap(), record);
        let full = record_bytes(record.kind(), 0, &payload);
        assert!(full.starts_with(header));
    }
    assert!(
        mismatches.is_empty(),
        "encoding changed:\n{}",
        mismatches.join("\n")
    );
}

/// Format 5's payloads, byte for byte as that release's golden test
/// pinned them, decode into today's records: a device of that release
/// replays.
#[test]
fn version_5_records_decode_into_the_current_form() {
    let v5_put = "01000000000000006201000000000000006b03000000000000000100000000000000650700000000000000010100000000000000740000000000010000000000000001000000000000006b01000000000000007601000000000000000500000000000000435243333201000000000000006300010000000000000001000000001000004400000003000000070707070707070707070707070707070707070707070707070707070707070701000000000000000000";
    let decode =
        |kind, hex_payload: &str| Record::decode(kind, &hex::decode(hex_payload).unwrap()).unwrap();
    assert_eq!(
        decode(RecordKind::ObjectPutV5, v5_put),
        Record::Object(put(Condition::IfNoneMatch(ETagMatch::Any)))
    );
    assert_eq!(
        decode(
            RecordKind::TombstoneV5,
            "01000000000000006201000000000000006b"
        ),
        Record::Delete(Delete {
            bucket: "b".into(),
            key: "k".into(),
            version: VersionRef::Current,
            at_ms: 0,
            bypass_governance: false,
            condition: DeleteCondition::default(),
        })
    );
    assert_eq!(
        decode(
            RecordKind::BucketCreateV5,
            "0100000000000000620900000000000000"
        ),
        Record::BucketCreate(BucketCreate {
            bucket: "b".into(),
            at_ms: 9,
            settings: vec![],
        })
    );
    assert_eq!(
        decode(
            RecordKind::MultipartCreateV5,
            "01000000000000007501000000000000006201000000000000006b00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000500000000000000"
        ),
        Record::MultipartCreate(MultipartCreate {
            upload_id: "u".into(),
            bucket: "b".into(),
            key: "k".into(),
            meta: ObjectMeta::default(),
            initiated_ms: 5,
        })
    );
    let complete = format!("010000000000000075{v5_put}");
    assert_eq!(
        decode(RecordKind::MultipartCompleteV5, &complete),
        Record::MultipartComplete(MultipartComplete {
            upload_id: "u".into(),
            object: put(Condition::IfNoneMatch(ETagMatch::Any)),
        })
    );
    assert!(RecordKind::ObjectPutV5.carries_inline_data());
    assert!(Record::decode(RecordKind::ObjectPutV5, &[1, 2, 3]).is_err());
}

#[test]
fn golden_header_and_chunk_bytes() {
    let payload = encode_chunk_payload(&[0xab; 32], 3, b"xyz");
    let full = record_bytes(RecordKind::Chunk, flags::ZSTD, &payload);
    assert_eq!(
        &full[..64],
        "435254530101000027000000000000002a000000000000005e1876f080367e6b"
    );
    let chunk = decode_chunk_payload(&payload).unwrap();
    assert_eq!(
        (chunk.hash, chunk.raw_len, chunk.stored),
        ([0xab; 32], 3, &b"xyz"[..])
    );
    assert_eq!(
        Record::decode(RecordKind::Chunk, &payload).unwrap(),
        Record::Chunk {
            hash: [0xab; 32],
            raw_len: 3
        }
    );
}

fn with_version(mut bytes: Vec<u8>, version: u32, crc_at: usize) -> Vec<u8> {
    bytes[8..12].copy_from_slice(&version.to_le_bytes());
    let crc = crc64(&[&bytes[..crc_at]]);
    bytes[crc_at..crc_at + 8].copy_from_slice(&crc.to_le_bytes());
    bytes
}

#[test]
fn superblock_and_segment_header_round_trip_and_pin() {
    let sb = Superblock {
        device_uuid: [1; 16],
        segment_size_bytes: 4 << 20,
        segment_count: 3,
        generation: 5,
        checkpoint: Some(Location {
            segment: 2,
            offset: 8192,
            len: 100,
        }),
        format_version: FORMAT_VERSION,
    };
    let bytes = sb.encode();
    assert_eq!(
        hex::encode(&bytes[..61]),
        "53545241544153420800000001010101010101010101010101010101000040000000000003000000050000000000000001020000000020000064000000"
    );
    assert_eq!(Superblock::decode(&bytes), Ok(sb.clone()));
    // The previous release's superblock opens, and says so.
    let crc_at = bytes.len() - 8;
    let v7 = with_version(bytes.clone(), 7, crc_at);
    assert_eq!(
        Superblock::decode(&v7),
        Ok(Superblock {
            format_version: 7,
            ..sb.clone()
        })
    );
    let v6 = with_version(bytes.clone(), 6, crc_at);
    assert_eq!(
        Superblock::decode(&v6),
        Ok(Superblock {
            format_version: 6,
            ..sb.clone()
        })
    );
    let v5 = with_version(bytes.clone(), 5, crc_at);
    assert_eq!(
        Superblock::decode(&v5),
        Ok(Superblock {
            format_version: 5,
            ..sb.clone()
        })
    );
    let v4 = with_version(bytes.clone(), 4, crc_at);
    assert_eq!(Superblock::decode(&v4), Err(SuperblockProblem::Version(4)));
    let mut bad = bytes.clone();
    bad[30] ^= 1;
    assert_eq!(
        Superblock::decode(&bad),
        Err(SuperblockProblem::BadChecksum)
    );
    assert_eq!(
        Superblock::decode(&[0; 4096]),
        Err(SuperblockProblem::NotStrata)
    );

    let sh = SegmentHeader {
        device_uuid: [1; 16],
        sequence: 9,
        first_lsn: 77,
        kind: SegmentKind::Compaction,
    };
    let enc = sh.encode();
    assert_eq!(
        hex::encode(&enc[..48]),
        "535452415441534708000000010000000101010101010101010101010101010109000000000000004d00000000000000"
    );
    assert_eq!(SegmentHeader::decode(&enc, &[1; 16]), Some(sh));
    let crc_at = enc.len() - 8;
    assert_eq!(
        SegmentHeader::decode(&with_version(enc.clone(), 5, crc_at), &[1; 16]),
        Some(sh),
        "the previous release's segments are read"
    );
    assert_eq!(
        SegmentHeader::decode(&with_version(enc.clone(), 4, crc_at), &[1; 16]),
        None
    );
    let log = SegmentHeader {
        kind: SegmentKind::Log,
        ..sh
    };
    assert_eq!(SegmentHeader::decode(&log.encode(), &[1; 16]), Some(log));
    let mut unknown_kind = enc.clone();
    unknown_kind[12] = 7;
    let crc = crc64(&[&unknown_kind[..crc_at]]);
    unknown_kind[crc_at..].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(SegmentHeader::decode(&unknown_kind, &[1; 16]), None);
    assert_eq!(
        SegmentHeader::decode(&enc, &[2; 16]),
        None,
        "foreign device"
    );
}

#[test]
fn version_ids_round_trip_and_refuse_garbage() {
    assert_eq!(version_id(0x2a, false), "000000000000002a");
    assert_eq!(version_id(0x2a, true), "null");
    assert_eq!(
        parse_version_id("000000000000002a"),
        Some(VersionRef::Lsn(0x2a))
    );
    assert_eq!(parse_version_id("null"), Some(VersionRef::Null));
    for bad in [
        "",
        "2a",
        "000000000000002A",
        "00000000000000zz",
        "0000000000000002a",
    ] {
        assert_eq!(parse_version_id(bad), None, "{bad}");
    }
}

#[test]
fn flipped_bit_fails_the_crc() {
    let payload = Record::BucketDelete(BucketOp {
        bucket: "b".into(),
        at_ms: 1,
    })
    .encode_payload();
    let header = RecordHeader {
        kind: RecordKind::BucketDelete,
        flags: 0,
        payload_len: payload.len() as u32,
        lsn: 1,
    };
    let mut out = Vec::new();
    header.encode_with(&DEVICE, &payload, &mut out);
    for bit in 0..out.len() * 8 {
        let mut damaged = out.clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        assert!(
            !RecordHeader::verify(&DEVICE, &damaged),
            "bit {bit} undetected"
        );
    }
}
