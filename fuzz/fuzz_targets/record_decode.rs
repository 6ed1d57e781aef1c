//! Arbitrary bytes through every decoder of the on-disk format
//! (`lsm::format`, `lsm::chunk`): record header peek/verify, every record
//! kind's payload, chunk payloads (raw, zstd, zstd + byte shuffle),
//! superblocks and segment headers. Oracle: no panic, no allocation beyond
//! libFuzzer's malloc limit, and decode(encode(x)) == x where an encoder
//! exists.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use lsm::chunk::{
    content_hash, decode_chunk, encode_chunk, encode_sealed_chunk, Compression, RawChunk,
};
use lsm::cipher::DataKey;
use lsm::format::{
    decode_chunk_payload, flags, Location, Record, RecordHeader, RecordKind, SegmentHeader,
    Superblock, MAX_RECORD_BYTES, RECORD_HEADER_BYTES,
};

const LOC: Location = Location {
    segment: 3,
    offset: 4096,
    len: 0,
};

/// decode_chunk with the payload's own hash (so decompression is reached)
/// and with a foreign one (which must fail as `Moved`, never decode); and
/// with a data key, as an encrypted object's reads pass one.
fn chunk_paths(record_flags: u8, payload: &[u8]) {
    let key = DataKey::from_bytes([9; 32]);
    let Some(chunk) = decode_chunk_payload(payload) else {
        assert!(decode_chunk(
            LOC,
            record_flags,
            Bytes::copy_from_slice(payload),
            &[0; 32],
            None
        )
        .is_err());
        return;
    };
    // Garbage under a key never opens (the tag fails) and never panics.
    let _ = decode_chunk(
        LOC,
        record_flags,
        Bytes::copy_from_slice(payload),
        &chunk.hash,
        Some(&key),
    );
    assert_eq!(chunk.stored.len() + 36, payload.len());
    let hash = chunk.hash;
    if let Ok(raw) = decode_chunk(
        LOC,
        record_flags,
        Bytes::copy_from_slice(payload),
        &hash,
        None,
    ) {
        assert_eq!(
            raw.len(),
            chunk.raw_len as usize,
            "decode_chunk length check"
        );
    }
    let mut other = hash;
    other[0] ^= 1;
    assert!(decode_chunk(
        LOC,
        record_flags,
        Bytes::copy_from_slice(payload),
        &other,
        None
    )
    .is_err());
}

fn record_paths(kind: RecordKind, payload: &[u8]) {
    let Ok(record) = Record::decode(kind, payload) else {
        return;
    };
    // A kind of an older format decodes into today's form of its record.
    let current = match kind {
        RecordKind::ObjectPutV5 => RecordKind::Object,
        RecordKind::TombstoneV5 => RecordKind::Delete,
        RecordKind::BucketCreateV5 => RecordKind::BucketCreate,
        RecordKind::MultipartCreateV5 => RecordKind::MultipartCreate,
        RecordKind::MultipartCompleteV5 => RecordKind::MultipartComplete,
        other => other,
    };
    assert_eq!(record.kind(), current);
    if kind == RecordKind::Chunk {
        return;
    }
    // What decodes re-encodes, in today's layout, to something that
    // decodes to the same value.
    let again = record.encode_payload();
    let back = Record::decode(current, &again).expect("re-encoded payload must decode");
    assert_eq!(back, record, "decode(encode(r)) != r for {kind:?}");
}

/// The device the records are checked against (a record's crc covers its
/// device's uuid).
const DEVICE: [u8; 16] = [0x5a; 16];

fuzz_target!(|data: &[u8]| {
    // Record header + payload, as the scanner and the reader see them.
    let _ = RecordHeader::verify(&DEVICE, data);
    if let Some(header) = RecordHeader::peek(data) {
        assert!(header.total_len() <= MAX_RECORD_BYTES);
        if let Some(whole) = data.get(..header.total_len()) {
            let payload = &whole[RECORD_HEADER_BYTES..];
            if RecordHeader::verify(&DEVICE, whole) {
                // A valid record re-encodes to the same bytes.
                let mut out = Vec::new();
                header.encode_with(&DEVICE, payload, &mut out);
                assert_eq!(out, whole, "header re-encoding differs");
            }
            record_paths(header.kind, payload);
            if header.kind == RecordKind::Chunk {
                chunk_paths(header.flags, payload);
            }
        }
    }

    // The whole input as every kind of payload.
    for kind in (0..=u8::MAX).filter_map(RecordKind::from_u8) {
        record_paths(kind, data);
    }

    // Chunk payloads under every flag combination the first byte names.
    if let Some((&f, rest)) = data.split_first() {
        chunk_paths(f, rest);
        chunk_paths(flags::ZSTD, rest);
        chunk_paths(flags::ZSTD | flags::SHUFFLE4, rest);
        chunk_paths(0, rest);
    }

    // Superblock and segment header, and their round trips.
    if let Ok(sb) = Superblock::decode(data) {
        // A superblock is written in the current format, whatever it was read in.
        let rewritten = Superblock {
            format_version: lsm::format::FORMAT_VERSION,
            ..sb.clone()
        };
        assert_eq!(Superblock::decode(&sb.encode()), Ok(rewritten));
        let _ = sb.slot();
        // segment_offset is u64 arithmetic on device-supplied values; it
        // must not overflow for any segment the superblock itself names.
        let _ = sb
            .segment_size_bytes
            .checked_mul(sb.segment_count as u64)
            .and_then(|n| n.checked_add(lsm::format::SEGMENTS_START));
    }
    if data.len() >= 16 {
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&data[..16]);
        for candidate in [&data[16..], data] {
            if let Some(h) = SegmentHeader::decode(candidate, &uuid) {
                assert_eq!(SegmentHeader::decode(&h.encode(), &uuid), Some(h));
            }
        }
    }

    // The encoder's round trip on a bounded prefix (zstd per exec is costly).
    let sample = &data[..data.len().min(16 << 10)];
    let hash = content_hash(sample);
    let rec = encode_chunk(RawChunk::copy_of(sample), hash, Compression::default());
    let raw = decode_chunk(LOC, rec.flags, rec.payload.clone().into(), &hash, None)
        .expect("own chunk decodes");
    assert_eq!(raw, sample, "chunk round trip");
    // Sealed: opens under its key only.
    let key = DataKey::from_bytes([3; 32]);
    let sealed = encode_sealed_chunk(RawChunk::copy_of(sample), Compression::default(), &key)
        .expect("seals");
    let lsm::format::Record::Chunk { hash, .. } = &sealed.record else {
        panic!("a sealed chunk is a chunk record");
    };
    let bytes: Bytes = sealed.payload.clone().into();
    let opened = decode_chunk(LOC, sealed.flags, bytes.clone(), hash, Some(&key)).expect("opens");
    assert_eq!(opened, sample, "sealed round trip");
    assert!(decode_chunk(LOC, sealed.flags, bytes, hash, None).is_err());
});
