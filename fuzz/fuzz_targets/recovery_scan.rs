//! Recovery and fsck over a device image built from the fuzz input: a
//! freshly formatted 4 MiB device (1 MiB segments, 3 of them) on a
//! `blockdev::FaultyDevice`, parts of which the input overwrites. Then
//! `recovery::rebuild` (with and without the checkpoint) and
//! `recovery::fsck::check`. Oracle: no panic, no hang, bounded memory; and,
//! for plausible structured images, a write acknowledged by a store opened
//! on the recovered state is found by the next recovery.
//!
//! The first input byte picks the mode (byte % 3) and whether the oracle
//! runs (byte / 3 % 2 == 0):
//!   0  raw segment bodies: valid/free/garbage segment headers chosen by the
//!      input, everything after each header is fuzz bytes (scanner, resync,
//!      torn-tail and damage paths);
//!   1  raw region: fuzz bytes written anywhere past the superblocks,
//!      segment headers included (header classification), optionally over
//!      superblock slot B;
//!   2  structured: records encoded with `RecordHeader::encode_with` (valid
//!      crcs) so the decoders, `Catalog::apply`, checkpoint loading and
//!      fsck's chunk reads are reached; headers built with
//!      `SegmentHeader::encode`; optional checkpoint named by superblocks;
//!      optional byte flips and torn records.

#![no_main]

use std::sync::{Arc, OnceLock};

use arbitrary::Unstructured;
use blockdev::{BlockDevice, FaultConfig, FaultyDevice};
use libfuzzer_sys::fuzz_target;
use lsm::chunk::{content_hash, encode_chunk, Compression, RawChunk};
use lsm::format::{
    BucketConfigChange, BucketCreate, BucketOp, BucketSetting, CheckpointPart, ChunkRef, Condition,
    Delete, DeleteCondition, ETagMatch, Location, LockMode, MultipartAbort, MultipartComplete,
    MultipartCreate, MultipartPart, ObjectLockConfig, ObjectMeta, ObjectPut, Record, RecordHeader,
    RecordKind, Retention, SegmentHeader, SegmentKind, Superblock, VersionChange, VersionRef,
    VersionUpdate, VersioningState, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES, SUPERBLOCK_OFFSETS,
};
use lsm::{Catalog, LogPosition};

mod shared;
use shared::{debug, runtime};

const DEVICE_BYTES: u64 = 4 << 20;
const SEGMENT_BYTES: u64 = 1 << 20;
const BLOCK: usize = 4096;
/// Records per structured image: enough for chains, small enough to stay fast.
const MAX_RECORDS: usize = 24;
const ORACLE_BUCKET: &str = "strata-fuzz-oracle-bucket";

struct Template {
    image: Vec<u8>,
    sb: Superblock,
}

fn template() -> &'static Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| {
        let device = FaultyDevice::new(DEVICE_BYTES, FaultConfig::default());
        let sb = lsm::format_device(&device, SEGMENT_BYTES).expect("format a fresh device");
        assert_eq!(sb.segment_count, 3);
        Template {
            image: device.visible_image(),
            sb,
        }
    })
}

/// A small number most of the time, any value (u64::MAX too) sometimes.
fn counter(u: &mut Unstructured, small_max: u64) -> u64 {
    let pick: u8 = u.arbitrary().unwrap_or(0);
    match pick % 16 {
        0 => u.arbitrary::<u64>().unwrap_or(0),
        1 => u64::MAX - u64::from(pick >> 4),
        _ => u.int_in_range(0..=small_max).unwrap_or(0),
    }
}

fn bytes<'a>(u: &mut Unstructured<'a>, max: usize) -> &'a [u8] {
    let len = u.int_in_range(0..=max).unwrap_or(0).min(u.len());
    u.bytes(len).unwrap_or(&[])
}

// ------------------------------------------------------------------ headers

#[derive(Clone, Copy, PartialEq)]
enum HeaderState {
    Free,
    Valid {
        sequence: u64,
        first_lsn: u64,
        kind: SegmentKind,
    },
    Garbage,
}

fn gen_headers(u: &mut Unstructured, sb: &Superblock) -> Vec<HeaderState> {
    (0..sb.segment_count)
        .map(|_| match u.int_in_range(0u8..=7).unwrap_or(0) {
            7 => HeaderState::Free,
            6 => HeaderState::Garbage,
            _ => HeaderState::Valid {
                sequence: counter(u, 6),
                first_lsn: counter(u, 4),
                kind: if u.ratio(1, 4).unwrap_or(false) {
                    SegmentKind::Compaction
                } else {
                    SegmentKind::Log
                },
            },
        })
        .collect()
}

fn write_headers(u: &mut Unstructured, image: &mut [u8], sb: &Superblock, headers: &[HeaderState]) {
    for (segment, state) in headers.iter().enumerate() {
        let at = sb.segment_offset(segment as u32) as usize;
        let block = &mut image[at..at + BLOCK];
        block.fill(0);
        match *state {
            HeaderState::Free => {}
            HeaderState::Garbage => {
                let garbage = bytes(u, 64);
                block[..garbage.len()].copy_from_slice(garbage);
                // Never all zeros: that would be a free segment.
                block[BLOCK - 1] |= 1;
            }
            HeaderState::Valid {
                sequence,
                first_lsn,
                kind,
            } => {
                let h = SegmentHeader {
                    device_uuid: sb.device_uuid,
                    sequence,
                    first_lsn,
                    kind,
                }
                .encode();
                block[..h.len()].copy_from_slice(&h);
            }
        }
    }
}

// -------------------------------------------------------------- structured

const BUCKETS: [&str; 3] = ["a", "b", ""];
const KEYS: [&str; 3] = ["k", "dir/k", "k2"];
const UPLOADS: [&str; 2] = ["u1", "u2"];

fn name(u: &mut Unstructured, pool: &[&str]) -> String {
    match u.int_in_range(0..=pool.len()).unwrap_or(0) {
        i if i < pool.len() => pool[i].to_string(),
        _ => String::from_utf8_lossy(bytes(u, 12)).into_owned(),
    }
}

/// What the structured generator knows of records laid out so far.
struct Placed {
    location: Option<Location>,
    /// Content hash when the record is a chunk (or carries inline data).
    hash: Option<[u8; 32]>,
    raw_len: u32,
}

fn any_location(u: &mut Unstructured) -> Location {
    Location {
        segment: counter(u, 3) as u32,
        offset: u.arbitrary().unwrap_or(0),
        len: u.arbitrary().unwrap_or(0),
    }
}

fn chunk_ref(u: &mut Unstructured, placed: &[Placed]) -> ChunkRef {
    let pick = u.int_in_range(0..=placed.len()).unwrap_or(0);
    if let Some(Placed {
        location: Some(location),
        hash,
        raw_len,
    }) = placed.get(pick)
    {
        let honest = u.ratio(7, 8).unwrap_or(true);
        ChunkRef {
            location: *location,
            raw_len: if honest {
                *raw_len
            } else {
                u.arbitrary().unwrap_or(0)
            },
            hash: if honest {
                hash.unwrap_or([0; 32])
            } else {
                u.arbitrary().unwrap_or([0; 32])
            },
        }
    } else {
        ChunkRef {
            location: any_location(u),
            raw_len: counter(u, 4096) as u32,
            hash: u.arbitrary().unwrap_or([0; 32]),
        }
    }
}

fn meta(u: &mut Unstructured) -> ObjectMeta {
    let mut meta = ObjectMeta {
        size: counter(u, 1 << 16),
        etag: name(u, &["e", "d41d8cd98f00b204e9800998ecf8427e"]),
        last_modified_ms: u.arbitrary().unwrap_or(0),
        content_type: u.ratio(1, 4).unwrap_or(false).then(|| "text/plain".into()),
        user_metadata: if u.ratio(1, 4).unwrap_or(false) {
            vec![(name(u, &["m"]), name(u, &["v"]))]
        } else {
            vec![]
        },
        checksums: if u.ratio(1, 4).unwrap_or(false) {
            vec![(name(u, &["CRC32"]), name(u, &["AAAAAA=="]))]
        } else {
            vec![]
        },
        quarantined: u.ratio(1, 16).unwrap_or(false).then(|| "bad".into()),
        ..Default::default()
    };
    if u.ratio(1, 4).unwrap_or(false) {
        meta.set_tags(vec![(name(u, &["t"]), name(u, &["v"]))]);
        meta.set_retention(u.arbitrary::<bool>().unwrap_or(false).then(|| retention(u)));
        meta.set_legal_hold(u.arbitrary().unwrap_or(false));
    }
    meta
}

fn retention(u: &mut Unstructured) -> Retention {
    Retention {
        mode: if u.arbitrary().unwrap_or(false) {
            LockMode::Governance
        } else {
            LockMode::Compliance
        },
        until_ms: u.arbitrary().unwrap_or(0),
    }
}

/// A version a record names: the current one, the null one, or one by a
/// (likely made-up) lsn.
fn version_ref(u: &mut Unstructured) -> VersionRef {
    match u.int_in_range(0u8..=2).unwrap_or(0) {
        0 => VersionRef::Current,
        1 => VersionRef::Null,
        _ => VersionRef::Lsn(counter(u, 64)),
    }
}

fn condition(u: &mut Unstructured) -> Condition {
    let etag = |u: &mut Unstructured| match u.arbitrary().unwrap_or(false) {
        true => ETagMatch::Any,
        false => ETagMatch::Is(name(u, &["e", "x"])),
    };
    match u.int_in_range(0u8..=3).unwrap_or(0) {
        0 | 1 => Condition::Always,
        2 => Condition::IfMatch(etag(u)),
        _ => Condition::IfNoneMatch(etag(u)),
    }
}

fn object_put(u: &mut Unstructured, placed: &[Placed]) -> (ObjectPut, Option<[u8; 32]>) {
    let mut inline_hash = None;
    let (inline, inline_flags, chunks) = match u.int_in_range(0u8..=3).unwrap_or(0) {
        0 | 1 => {
            let n = u.int_in_range(0..=4).unwrap_or(0);
            (vec![], 0, (0..n).map(|_| chunk_ref(u, placed)).collect())
        }
        2 => {
            let data = bytes(u, 2048);
            let hash = content_hash(data);
            inline_hash = Some(hash);
            let rec = encode_chunk(RawChunk::copy_of(data), hash, Compression::default());
            (rec.payload, rec.flags, vec![])
        }
        _ => {
            let flags = u.arbitrary().unwrap_or(0);
            (bytes(u, 256).to_vec(), flags, vec![])
        }
    };
    let put = ObjectPut {
        bucket: name(u, &BUCKETS),
        key: name(u, &KEYS),
        meta: meta(u),
        chunks,
        condition: condition(u),
        inline,
        inline_flags,
    };
    (put, inline_hash)
}

enum Prev {
    None,
    Record(usize),
    Any(Location),
}

enum CheckpointBytes {
    /// zstd(bincode(index of the records applied so far)): loads.
    IndexSoFar {
        tail: u8,
        applied_lsn: Option<u64>,
    },
    /// zstd of fuzz bytes: decompresses, then bincode sees fuzz bytes.
    Zstd(Vec<u8>),
    Raw(Vec<u8>),
}

enum Body {
    Raw {
        kind: RecordKind,
        flags: u8,
        payload: Vec<u8>,
    },
    Record(Record),
    Chunk {
        data: Vec<u8>,
        compression: Compression,
        flags: Option<u8>,
    },
    Checkpoint {
        previous: Prev,
        part_index: u32,
        bytes: CheckpointBytes,
    },
}

enum Gap {
    None,
    AlignBlock,
    Skip(u16),
}

enum Damage {
    None,
    Flip(u16, u8),
    Torn(u16),
}

struct Spec {
    gap: Gap,
    lsn: u64,
    body: Body,
    damage: Damage,
}

fn gen_body(u: &mut Unstructured, placed: &[Placed], total: usize) -> (Body, Option<[u8; 32]>) {
    let mut hash = None;
    let body = match u.int_in_range(0u8..=15).unwrap_or(0) {
        12 => {
            let kinds: Vec<RecordKind> = (0..=u8::MAX).filter_map(RecordKind::from_u8).collect();
            let kind = *u.choose(&kinds).unwrap_or(&RecordKind::Chunk);
            let flags = u.arbitrary().unwrap_or(0);
            let payload = bytes(u, 1024).to_vec();
            Body::Raw {
                kind,
                flags,
                payload,
            }
        }
        1 | 2 => {
            let data = bytes(u, 8192).to_vec();
            let compression = match u.int_in_range(0u8..=2).unwrap_or(0) {
                0 => Compression {
                    zstd_level: None,
                    shuffle: false,
                },
                1 => Compression {
                    zstd_level: Some(1),
                    shuffle: false,
                },
                _ => Compression::default(),
            };
            let flags = u
                .ratio(1, 8)
                .unwrap_or(false)
                .then(|| u.arbitrary().unwrap_or(0));
            hash = Some(content_hash(&data));
            Body::Chunk {
                data,
                compression,
                flags,
            }
        }
        3 | 4 => {
            let (put, inline_hash) = object_put(u, placed);
            hash = inline_hash;
            Body::Record(Record::Object(put))
        }
        5 => Body::Record(Record::Delete(Delete {
            bucket: name(u, &BUCKETS),
            key: name(u, &KEYS),
            version: version_ref(u),
            at_ms: u.arbitrary().unwrap_or(0),
            bypass_governance: u.arbitrary().unwrap_or(false),
            condition: DeleteCondition {
                etag: u
                    .ratio(1, 4)
                    .unwrap_or(false)
                    .then(|| ETagMatch::Is(name(u, &["e"]))),
                ..Default::default()
            },
        })),
        0 | 6 | 7 => Body::Record(Record::BucketCreate(BucketCreate {
            bucket: name(u, &BUCKETS),
            at_ms: u.arbitrary().unwrap_or(0),
            settings: if u.ratio(1, 4).unwrap_or(false) {
                vec![BucketSetting::ObjectLock(ObjectLockConfig::default())]
            } else {
                vec![]
            },
        })),
        14 => Body::Record(Record::BucketConfig(BucketConfigChange {
            bucket: name(u, &BUCKETS),
            at_ms: u.arbitrary().unwrap_or(0),
            setting: match u.int_in_range(0u8..=2).unwrap_or(0) {
                0 => BucketSetting::Versioning(VersioningState::Enabled),
                1 => BucketSetting::Versioning(VersioningState::Suspended),
                _ => BucketSetting::ObjectLock(ObjectLockConfig::default()),
            },
        })),
        15 => Body::Record(Record::VersionUpdate(VersionUpdate {
            bucket: name(u, &BUCKETS),
            key: name(u, &KEYS),
            version: version_ref(u),
            at_ms: u.arbitrary().unwrap_or(0),
            change: match u.int_in_range(0u8..=3).unwrap_or(0) {
                0 => VersionChange::Tags(vec![(name(u, &["t"]), name(u, &["v"]))]),
                1 => VersionChange::LegalHold(u.arbitrary().unwrap_or(false)),
                2 => VersionChange::Retention {
                    retention: u.arbitrary::<bool>().unwrap_or(false).then(|| retention(u)),
                    bypass_governance: u.arbitrary().unwrap_or(false),
                },
                _ => VersionChange::Quarantine("fuzz".into()),
            },
        })),
        8 => Body::Record(Record::BucketDelete(BucketOp {
            bucket: name(u, &BUCKETS),
            at_ms: u.arbitrary().unwrap_or(0),
        })),
        9 => Body::Record(Record::MultipartCreate(MultipartCreate {
            upload_id: name(u, &UPLOADS),
            bucket: name(u, &BUCKETS),
            key: name(u, &KEYS),
            meta: meta(u),
            initiated_ms: u.arbitrary().unwrap_or(0),
        })),
        10 => {
            let n = u.int_in_range(0..=3).unwrap_or(0);
            Body::Record(Record::MultipartPart(MultipartPart {
                upload_id: name(u, &UPLOADS),
                part_number: counter(u, 4) as u32,
                size: counter(u, 1 << 16),
                etag: name(u, &["e"]),
                last_modified_ms: u.arbitrary().unwrap_or(0),
                checksums: vec![],
                chunks: (0..n).map(|_| chunk_ref(u, placed)).collect(),
            }))
        }
        11 => {
            if u.arbitrary().unwrap_or(false) {
                let (object, _) = object_put(u, placed);
                Body::Record(Record::MultipartComplete(MultipartComplete {
                    upload_id: name(u, &UPLOADS),
                    object,
                }))
            } else {
                Body::Record(Record::MultipartAbort(MultipartAbort {
                    upload_id: name(u, &UPLOADS),
                }))
            }
        }
        _ => {
            let previous = match u.int_in_range(0u8..=5).unwrap_or(0) {
                0..=2 => Prev::None,
                3 => Prev::Any(any_location(u)),
                _ => Prev::Record(u.int_in_range(0..=total.saturating_sub(1)).unwrap_or(0)),
            };
            let bytes = match u.int_in_range(0u8..=3).unwrap_or(0) {
                0 | 1 => CheckpointBytes::IndexSoFar {
                    tail: u.arbitrary().unwrap_or(0),
                    applied_lsn: u.ratio(1, 4).unwrap_or(false).then(|| counter(u, 64)),
                },
                2 => CheckpointBytes::Zstd(bytes(u, 512).to_vec()),
                _ => CheckpointBytes::Raw(bytes(u, 512).to_vec()),
            };
            Body::Checkpoint {
                previous,
                part_index: match u.int_in_range(0u8..=3).unwrap_or(0) {
                    0 | 1 => 0,
                    2 => 1,
                    _ => counter(u, 3) as u32,
                },
                bytes,
            }
        }
    };
    (body, hash)
}

/// Encodes a record; `locations` resolves `Prev::Record` (None while the
/// layout is still being made: a same-sized placeholder is used), so a
/// checkpoint part may name itself or a later part.
fn encode(
    spec: &Spec,
    locations: Option<&[Option<Location>]>,
    index_blob: &Option<Vec<u8>>,
) -> (RecordKind, u8, Vec<u8>) {
    match &spec.body {
        Body::Raw {
            kind,
            flags,
            payload,
        } => (*kind, *flags, payload.clone()),
        Body::Record(record) => (record.kind(), 0, record.encode_payload()),
        Body::Chunk {
            data,
            compression,
            flags,
        } => {
            let rec = encode_chunk(RawChunk::copy_of(data), content_hash(data), *compression);
            (RecordKind::Chunk, flags.unwrap_or(rec.flags), rec.payload)
        }
        Body::Checkpoint {
            previous,
            part_index,
            bytes,
        } => {
            let placeholder = Location {
                segment: u32::MAX,
                offset: u32::MAX,
                len: u32::MAX,
            };
            let previous = match previous {
                Prev::None => None,
                Prev::Any(l) => Some(*l),
                Prev::Record(j) => Some(
                    locations
                        .and_then(|l| l.get(*j).copied().flatten())
                        .unwrap_or(placeholder),
                ),
            };
            let bytes = match bytes {
                CheckpointBytes::IndexSoFar { .. } => index_blob.clone().unwrap_or_default(),
                CheckpointBytes::Zstd(b) => zstd::bulk::compress(b, 1).unwrap_or_default(),
                CheckpointBytes::Raw(b) => b.clone(),
            };
            let record = Record::Checkpoint(CheckpointPart {
                previous,
                part_index: *part_index,
                bytes,
            });
            (RecordKind::Checkpoint, 0, record.encode_payload())
        }
    }
}

fn record_bytes(spec: &Spec, kind: RecordKind, flags: u8, payload: &[u8]) -> Vec<u8> {
    let header = RecordHeader {
        kind,
        flags,
        payload_len: payload.len() as u32,
        lsn: spec.lsn,
    };
    let mut out = Vec::with_capacity(RECORD_HEADER_BYTES + payload.len());
    header.encode_with(&template().sb.device_uuid, payload, &mut out);
    out
}

/// What a structured image looks like, for the oracle's plausibility test.
struct Built {
    image: Vec<u8>,
    /// No checkpoint named, and every record lies in a segment whose header
    /// is valid: a state a real store can leave (stale records of a free
    /// segment with lsns above everything else cannot happen for real).
    plausible: bool,
}

#[derive(Clone, Copy)]
enum SbChoice {
    None,
    Any(Location),
    NewestCheckpoint,
    Record(usize),
}

fn sb_choice(u: &mut Unstructured) -> SbChoice {
    match u.int_in_range(0u8..=4).unwrap_or(0) {
        0 | 1 => SbChoice::NewestCheckpoint,
        2 => SbChoice::None,
        3 => SbChoice::Any(any_location(u)),
        _ => SbChoice::Record(u.arbitrary().unwrap_or(0)),
    }
}

fn build_structured(u: &mut Unstructured, t: &Template) -> Built {
    let sb = &t.sb;
    let mut image = t.image.clone();
    // What the superblocks will name is chosen first: the end of the input
    // is often exhausted (reads as zeros), and it must not always say "none".
    let sb_a = sb_choice(u);
    let sb_b = u.ratio(1, 3).unwrap_or(false).then(|| sb_choice(u));
    let headers = gen_headers(u, sb);
    write_headers(u, &mut image, sb, &headers);
    if debug() {
        for (i, h) in headers.iter().enumerate() {
            match h {
                HeaderState::Valid {
                    sequence,
                    first_lsn,
                    kind,
                } => {
                    eprintln!("segment {i}: {kind:?} sequence {sequence} first_lsn {first_lsn}")
                }
                HeaderState::Free => eprintln!("segment {i}: free"),
                HeaderState::Garbage => eprintln!("segment {i}: garbage"),
            }
        }
    }

    let total = u.int_in_range(0..=MAX_RECORDS).unwrap_or(0);
    let mut cursors = vec![SEGMENT_HEADER_BYTES as u64; sb.segment_count as usize];
    let mut placed: Vec<Placed> = Vec::with_capacity(total);
    let mut specs: Vec<Spec> = Vec::with_capacity(total);
    let mut encoded: Vec<Option<(u64, Vec<u8>)>> = Vec::with_capacity(total);
    let mut model = Catalog::default();
    let mut last_lsn = 0u64;
    let mut plausible = true;

    for _ in 0..total {
        if u.is_empty() {
            break;
        }
        let segment = u.int_in_range(0..=sb.segment_count - 1).unwrap_or(0);
        let gap = match u.int_in_range(0u8..=7).unwrap_or(0) {
            7 => Gap::AlignBlock,
            6 => Gap::Skip(u.arbitrary().unwrap_or(0)),
            _ => Gap::None,
        };
        let lsn = match u.int_in_range(0u8..=7).unwrap_or(0) {
            7 => last_lsn,
            6 => counter(u, 64),
            _ => last_lsn.saturating_add(1),
        };
        last_lsn = lsn;
        let (body, hash) = gen_body(u, &placed, total);
        let damage = match u.int_in_range(0u8..=15).unwrap_or(0) {
            15 => Damage::Flip(
                u.arbitrary().unwrap_or(0),
                u.arbitrary::<u8>().unwrap_or(0) | 1,
            ),
            14 => Damage::Torn(u.arbitrary().unwrap_or(0)),
            _ => Damage::None,
        };
        let spec = Spec {
            gap,
            lsn,
            body,
            damage,
        };

        let mut cursor = cursors[segment as usize];
        match spec.gap {
            Gap::None => {}
            Gap::AlignBlock => cursor = blockdev::align_up(cursor),
            Gap::Skip(n) => cursor += u64::from(n),
        }

        // The checkpoint's index covers the records applied so far.
        let index_blob = match &spec.body {
            Body::Checkpoint {
                bytes: CheckpointBytes::IndexSoFar { tail, applied_lsn },
                ..
            } => {
                let mut index = model.index.clone();
                if let Some(lsn) = applied_lsn {
                    index.applied_lsn = *lsn;
                }
                index.tail = match tail % 4 {
                    0 => None,
                    1 => Some(LogPosition {
                        segment: u32::from(*tail >> 2),
                        sequence: u64::from(*tail >> 4),
                        offset: u32::from(*tail) * 4096,
                    }),
                    _ => match headers[segment as usize] {
                        HeaderState::Valid { sequence, .. } => Some(LogPosition {
                            segment,
                            sequence,
                            offset: cursor as u32,
                        }),
                        _ => None,
                    },
                };
                bincode::serialize(&index)
                    .ok()
                    .and_then(|b| zstd::bulk::compress(&b, 1).ok())
            }
            _ => None,
        };

        let (kind, flags, payload) = encode(&spec, None, &index_blob);
        let len = (RECORD_HEADER_BYTES + payload.len()) as u64;
        let location = (cursor + len <= SEGMENT_BYTES).then(|| Location {
            segment,
            offset: cursor as u32,
            len: len as u32,
        });
        if debug() {
            eprintln!(
                "record {}: segment {segment} at {cursor} lsn {lsn} kind {kind:?} flags {flags} len {len} placed {}",
                specs.len(),
                location.is_some()
            );
        }
        if let Some(location) = location {
            cursors[segment as usize] = cursor + len;
            if !matches!(headers[segment as usize], HeaderState::Valid { .. }) {
                plausible = false;
            }
            let record = match &spec.body {
                Body::Chunk { data, .. } => Some(Record::Chunk {
                    hash: content_hash(data),
                    raw_len: data.len() as u32,
                }),
                Body::Record(r) => Some(r.clone()),
                Body::Raw { kind, payload, .. } => Record::decode(*kind, payload).ok(),
                Body::Checkpoint { .. } => None,
            };
            if let Some(record) = record {
                let _ = model.apply(lsn, location, &record);
            }
            encoded.push(Some((
                sb.segment_offset(segment) + cursor,
                record_bytes(&spec, kind, flags, &payload),
            )));
        } else {
            encoded.push(None);
        }
        let raw_len = match &spec.body {
            Body::Chunk { data, .. } => data.len() as u32,
            _ => 0,
        };
        placed.push(Placed {
            location,
            hash,
            raw_len,
        });
        specs.push(spec);
    }

    // Second pass: checkpoint parts get the real location of the record
    // they name (which may come later); the size does not change.
    let locations: Vec<Option<Location>> = placed.iter().map(|p| p.location).collect();
    for (i, spec) in specs.iter().enumerate() {
        if let Body::Checkpoint { .. } = spec.body {
            if let Some((at, old)) = &encoded[i] {
                let blob = (old.len() >= RECORD_HEADER_BYTES)
                    .then(|| old[RECORD_HEADER_BYTES..].to_vec())
                    .and_then(|p| match Record::decode(RecordKind::Checkpoint, &p) {
                        Ok(Record::Checkpoint(part)) => Some(part.bytes),
                        _ => None,
                    });
                let (kind, flags, payload) =
                    encode(spec, Some(&locations), &Some(blob.unwrap_or_default()));
                let new = record_bytes(spec, kind, flags, &payload);
                debug_assert_eq!(new.len(), old.len());
                if debug() {
                    if let Ok(Record::Checkpoint(part)) = Record::decode(kind, &payload) {
                        eprintln!(
                            "record {i}: checkpoint part_index {} previous {:?} ({} bytes)",
                            part.part_index,
                            part.previous,
                            part.bytes.len()
                        );
                    }
                }
                encoded[i] = Some((*at, new));
            }
        }
    }

    for (spec, slot) in specs.iter().zip(&encoded) {
        let Some((at, bytes)) = slot else { continue };
        let at = *at as usize;
        let mut bytes = bytes.clone();
        match spec.damage {
            Damage::None => {}
            Damage::Flip(i, mask) => {
                let i = i as usize % bytes.len();
                bytes[i] ^= mask;
            }
            Damage::Torn(n) => bytes.truncate(n as usize % bytes.len()),
        }
        image[at..at + bytes.len()].copy_from_slice(&bytes);
    }

    // Superblocks: generation 2 (slot A) and maybe 3 (slot B) naming a
    // checkpoint, as chosen before the records were generated.
    for (generation, choice) in [(2u64, Some(sb_a)), (3, sb_b)] {
        let Some(choice) = choice else { continue };
        let checkpoint = match choice {
            SbChoice::None => None,
            SbChoice::Any(l) => Some(l),
            // The newest checkpoint part laid out, as a store would name it.
            SbChoice::NewestCheckpoint => specs
                .iter()
                .zip(&locations)
                .rev()
                .find(|(spec, l)| matches!(spec.body, Body::Checkpoint { .. }) && l.is_some())
                .and_then(|(_, l)| *l),
            SbChoice::Record(j) => locations.get(j % locations.len().max(1)).copied().flatten(),
        };
        if checkpoint.is_some() {
            plausible = false;
        }
        if debug() {
            eprintln!("superblock generation {generation}: checkpoint {checkpoint:?}");
        }
        let next = Superblock {
            generation,
            checkpoint,
            ..sb.clone()
        };
        let at = SUPERBLOCK_OFFSETS[next.slot()] as usize;
        let enc = next.encode();
        image[at..at + BLOCK].fill(0);
        image[at..at + enc.len()].copy_from_slice(&enc);
    }
    Built { image, plausible }
}

// --------------------------------------------------------------- raw modes

/// The oracle stays off when a segment is free: the writer would reuse it,
/// and records the fuzzer put there (crc-valid ones are reachable: libFuzzer
/// copies compared values into the input) could come back to life, which
/// no real store can produce.
fn build_raw_bodies(u: &mut Unstructured, t: &Template) -> Built {
    let sb = &t.sb;
    let mut image = t.image.clone();
    let headers = gen_headers(u, sb);
    let plausible = !headers.contains(&HeaderState::Free);
    write_headers(u, &mut image, sb, &headers);
    let mut rest = u.bytes(u.len()).unwrap_or(&[]);
    for segment in 0..sb.segment_count {
        if rest.is_empty() {
            break;
        }
        let start = (sb.segment_offset(segment) + u64::from(SEGMENT_HEADER_BYTES)) as usize;
        let room = (SEGMENT_BYTES - u64::from(SEGMENT_HEADER_BYTES)) as usize;
        let n = rest.len().min(room);
        image[start..start + n].copy_from_slice(&rest[..n]);
        rest = &rest[n..];
    }
    Built { image, plausible }
}

fn build_raw_region(u: &mut Unstructured, t: &Template) -> Vec<u8> {
    let mut image = t.image.clone();
    if u.ratio(1, 4).unwrap_or(false) {
        // Superblock slot B (generation 1) damaged: slot A must carry on.
        let junk = bytes(u, 96);
        let at = SUPERBLOCK_OFFSETS[1] as usize;
        image[at..at + junk.len()].copy_from_slice(junk);
    }
    let blocks = ((DEVICE_BYTES - lsm::format::SEGMENTS_START) / BLOCK as u64) as u16;
    let block: u16 = u.arbitrary().unwrap_or(0);
    let start = lsm::format::SEGMENTS_START as usize + (block % blocks) as usize * BLOCK;
    let rest = u.bytes(u.len()).unwrap_or(&[]);
    let n = rest.len().min(image.len() - start);
    image[start..start + n].copy_from_slice(&rest[..n]);
    image
}

// ------------------------------------------------------------------ replay

fn small_store_config() -> lsm::StoreConfig {
    lsm::StoreConfig {
        cache_bytes: 1 << 20,
        ..Default::default()
    }
}

/// Every full replay scans each used segment to its end (the clean end of
/// the log looks like damage until the resync search finds nothing), which
/// dominates the cost of an input; so fsck (rebuild + a whole-log replay)
/// runs once and the oracle reuses the store's own view of what it recovered.
fn replay(image: Vec<u8>, oracle: bool) {
    let device = Arc::new(FaultyDevice::from_image(image, FaultConfig::default()));
    let checked = recovery::fsck::check(device.as_ref(), &());
    if debug() {
        eprintln!("fsck: {checked:#?}");
    }
    if !oracle || checked.is_err() {
        return;
    }
    // A store opened on the recovered state appends after the recovered
    // head; what it acknowledges, the next recovery must find, and nothing
    // recovered before may be lost.
    let dyn_device: Arc<dyn BlockDevice> = device.clone();
    let (store, _) = recovery::open(
        dyn_device,
        recovery::OpenOptions {
            store: small_store_config(),
            ignore_checkpoint: false,
        },
    )
    .expect("fsck's rebuild succeeded, so open must");
    let buckets_before = store.list_buckets();
    let objects_before = store.stats().objects;
    if store.bucket_exists(ORACLE_BUCKET) {
        return;
    }
    let written = runtime().block_on(store.create_bucket(ORACLE_BUCKET, false));
    store.shutdown();
    drop(store);
    if debug() {
        eprintln!("oracle: post-recovery write: {written:?}");
    }
    if written.is_err() {
        return;
    }
    let after = recovery::rebuild(device.as_ref(), false)
        .expect("recovery after an acknowledged write must succeed");
    let index = &after.catalog.index;
    assert!(
        index.bucket_exists(ORACLE_BUCKET),
        "an acknowledged write was lost by the next recovery"
    );
    for bucket in buckets_before {
        assert!(
            index.bucket_exists(&bucket.name),
            "bucket {:?} recovered before a new write, lost after it",
            bucket.name
        );
    }
    assert_eq!(
        index.object_count(),
        objects_before,
        "a new bucket record changed the recovered objects"
    );
}

fuzz_target!(|data: &[u8]| {
    let t = template();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut u = Unstructured::new(rest);
    // The oracle costs two more full replays: half of the inputs run it.
    let oracle = mode / 3 % 2 == 0;
    match mode % 3 {
        0 => {
            let built = build_raw_bodies(&mut u, t);
            replay(built.image, oracle && built.plausible);
        }
        1 => replay(build_raw_region(&mut u, t), false),
        _ => {
            let built = build_structured(&mut u, t);
            replay(built.image, oracle && built.plausible);
        }
    }
});
