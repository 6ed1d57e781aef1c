//! The bytes on the device, defined once: superblock, segment header, record
//! header and every record payload. Every reader and writer goes through this
//! file; the golden-bytes tests at the bottom make a format change deliberate.
//!
//! Device layout:
//!   [superblock A @0][superblock B @4096] ... [segment 0 @1 MiB][segment 1] ...
//! Segment layout: [segment header block][records, each batch block-aligned].
//! Record layout: [32-byte header][payload]; crc64 over the device's uuid,
//! the header (but its crc) and the payload.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Version 5: a record's crc covers the device's uuid, so that a record
/// left by an earlier format of the device never passes for one of this
/// store's (it kept a valid crc and numbers of its own). Version 4: segment
/// headers say which head wrote them (log or compaction). Version 3 gave
/// chunk references the chunk's content hash (dedup, relocation); version 2
/// added inline data to object records.
pub const FORMAT_VERSION: u32 = 5;
pub const SUPERBLOCK_MAGIC: [u8; 8] = *b"STRATASB";
pub const SEGMENT_MAGIC: [u8; 8] = *b"STRATASG";
pub const RECORD_MAGIC: u32 = 0x5354_5243; // "STRC"
pub const RECORD_HEADER_BYTES: usize = 32;
/// Superblock slots at 0 and 4096; segments start at 1 MiB.
pub const SUPERBLOCK_OFFSETS: [u64; 2] = [0, 4096];
pub const SEGMENTS_START: u64 = 1 << 20;
/// The first block of a segment is its header.
pub const SEGMENT_HEADER_BYTES: u32 = 4096;
pub const MIN_SEGMENT_BYTES: u64 = 1 << 20;
/// No record may exceed this (and it must also fit in a segment).
pub const MAX_RECORD_BYTES: usize = 32 << 20;

/// Every record lsn and segment sequence is below this: far beyond any
/// count a real device reaches (2^62 records at one per nanosecond is 146
/// years), so a larger one read from the device is damage, and the writer
/// refuses to go past it rather than wrap.
pub const COUNTER_LIMIT: u64 = 1 << 62;

pub fn crc64(parts: &[&[u8]]) -> u64 {
    let mut digest = crc64fast::Digest::new();
    for part in parts {
        digest.write(part);
    }
    digest.sum64()
}

/// Where a record lives: segment, byte offset of its header inside the
/// segment, and header+payload length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Location {
    pub segment: u32,
    pub offset: u32,
    pub len: u32,
}

// ---------------------------------------------------------------- superblock

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    pub device_uuid: [u8; 16],
    pub segment_size_bytes: u64,
    pub segment_count: u32,
    /// Bumped on every rewrite; the valid slot with the higher one wins.
    pub generation: u64,
    /// The newest checkpoint's last record, if any.
    pub checkpoint: Option<Location>,
}

const SUPERBLOCK_BYTES: usize = 8 + 4 + 16 + 8 + 4 + 8 + 1 + 12 + 8;

impl Superblock {
    pub fn slot(&self) -> usize {
        (self.generation % 2) as usize
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SUPERBLOCK_BYTES);
        out.extend_from_slice(&SUPERBLOCK_MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&self.device_uuid);
        out.extend_from_slice(&self.segment_size_bytes.to_le_bytes());
        out.extend_from_slice(&self.segment_count.to_le_bytes());
        out.extend_from_slice(&self.generation.to_le_bytes());
        let cp = self.checkpoint.unwrap_or(Location {
            segment: 0,
            offset: 0,
            len: 0,
        });
        out.push(self.checkpoint.is_some() as u8);
        out.extend_from_slice(&cp.segment.to_le_bytes());
        out.extend_from_slice(&cp.offset.to_le_bytes());
        out.extend_from_slice(&cp.len.to_le_bytes());
        let crc = crc64(&[&out]);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> std::result::Result<Superblock, SuperblockProblem> {
        let b = bytes
            .get(..SUPERBLOCK_BYTES)
            .ok_or(SuperblockProblem::Short)?;
        if b[..8] != SUPERBLOCK_MAGIC {
            return Err(SuperblockProblem::NotStrata);
        }
        let body = &b[..SUPERBLOCK_BYTES - 8];
        if crc64(&[body]) != le_u64(b, SUPERBLOCK_BYTES - 8) {
            return Err(SuperblockProblem::BadChecksum);
        }
        let version = le_u32(b, 8);
        if version != FORMAT_VERSION {
            return Err(SuperblockProblem::Version(version));
        }
        let mut device_uuid = [0; 16];
        device_uuid.copy_from_slice(&b[12..28]);
        let has_checkpoint = b[48] == 1;
        Ok(Superblock {
            device_uuid,
            segment_size_bytes: le_u64(b, 28),
            segment_count: le_u32(b, 36),
            generation: le_u64(b, 40),
            checkpoint: has_checkpoint.then(|| Location {
                segment: le_u32(b, 49),
                offset: le_u32(b, 53),
                len: le_u32(b, 57),
            }),
        })
    }

    /// Byte offset of a segment on the device.
    pub fn segment_offset(&self, segment: u32) -> u64 {
        SEGMENTS_START + segment as u64 * self.segment_size_bytes
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SuperblockProblem {
    #[error("too short")]
    Short,
    #[error("no Strata superblock (unformatted or foreign device)")]
    NotStrata,
    #[error("checksum mismatch")]
    BadChecksum,
    #[error("format version {0} is not supported (this build reads {FORMAT_VERSION})")]
    Version(u32),
}

// ------------------------------------------------------------ segment header

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub device_uuid: [u8; 16],
    /// Order in which segments were opened; recovery replays in this order.
    pub sequence: u64,
    /// Every record in this incarnation has an lsn at or above this, so stale
    /// records of an earlier incarnation are recognised as such.
    pub first_lsn: u64,
    pub kind: SegmentKind,
}

/// Which head a segment was opened by. The two heads write at the same
/// time, so their records' lsns interleave; each segment's own records
/// still rise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum SegmentKind {
    /// Every record the store writes except compaction's copies; replayed
    /// at recovery.
    #[default]
    Log = 0,
    /// Compaction's copies of live data (cold data, kept apart from new
    /// writes). Only chunk records, which change no state when applied:
    /// what references them is the index (checkpointed) or a manifest in
    /// the log, so recovery never replays these segments.
    Compaction = 1,
}

impl SegmentKind {
    fn from_u32(value: u32) -> Option<SegmentKind> {
        match value {
            0 => Some(SegmentKind::Log),
            1 => Some(SegmentKind::Compaction),
            _ => None,
        }
    }
}

const SEGMENT_HEADER_USED: usize = 8 + 4 + 4 + 16 + 8 + 8 + 8;

impl SegmentHeader {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SEGMENT_HEADER_USED);
        out.extend_from_slice(&SEGMENT_MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(self.kind as u32).to_le_bytes());
        out.extend_from_slice(&self.device_uuid);
        out.extend_from_slice(&self.sequence.to_le_bytes());
        out.extend_from_slice(&self.first_lsn.to_le_bytes());
        let crc = crc64(&[&out]);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// `None` for a free segment, a foreign one, or a damaged header.
    pub fn decode(bytes: &[u8], device_uuid: &[u8; 16]) -> Option<SegmentHeader> {
        let b = bytes.get(..SEGMENT_HEADER_USED)?;
        if b[..8] != SEGMENT_MAGIC || le_u32(b, 8) != FORMAT_VERSION {
            return None;
        }
        if crc64(&[&b[..SEGMENT_HEADER_USED - 8]]) != le_u64(b, SEGMENT_HEADER_USED - 8) {
            return None;
        }
        if &b[16..32] != device_uuid {
            return None;
        }
        Some(SegmentHeader {
            device_uuid: *device_uuid,
            sequence: le_u64(b, 32),
            first_lsn: le_u64(b, 40),
            kind: SegmentKind::from_u32(le_u32(b, 12))?,
        })
    }
}

// ------------------------------------------------------------------ records

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordKind {
    Chunk = 1,
    ObjectPut = 2,
    Tombstone = 3,
    BucketCreate = 4,
    BucketDelete = 5,
    MultipartCreate = 6,
    MultipartPart = 7,
    MultipartComplete = 8,
    MultipartAbort = 9,
    Checkpoint = 10,
}

impl RecordKind {
    pub fn from_u8(v: u8) -> Option<RecordKind> {
        use RecordKind::*;
        Some(match v {
            1 => Chunk,
            2 => ObjectPut,
            3 => Tombstone,
            4 => BucketCreate,
            5 => BucketDelete,
            6 => MultipartCreate,
            7 => MultipartPart,
            8 => MultipartComplete,
            9 => MultipartAbort,
            10 => Checkpoint,
            _ => return None,
        })
    }
}

/// Record flags. Only chunk records use them today.
pub mod flags {
    /// The stored bytes are zstd-compressed.
    pub const ZSTD: u8 = 1;
    /// Before compression the bytes were split into 4 byte planes (float32).
    pub const SHUFFLE4: u8 = 2;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub kind: RecordKind,
    pub flags: u8,
    pub payload_len: u32,
    /// Global log sequence number: strictly increasing in write order.
    pub lsn: u64,
}

impl RecordHeader {
    pub fn total_len(&self) -> usize {
        RECORD_HEADER_BYTES + self.payload_len as usize
    }

    /// Appends header and payload to `out`, with the crc for the device
    /// `device_uuid`.
    pub fn encode_with(&self, device_uuid: &[u8; 16], payload: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + RECORD_HEADER_BYTES + payload.len(), 0);
        self.encode_into(device_uuid, payload, &mut out[start..]);
    }

    /// Header and payload into `out`, which is exactly as long as both.
    pub fn encode_into(&self, device_uuid: &[u8; 16], payload: &[u8], out: &mut [u8]) {
        let (head, body) = out.split_at_mut(RECORD_HEADER_BYTES);
        head[..4].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
        head[4] = self.kind as u8;
        head[5] = self.flags;
        head[6..8].fill(0);
        head[8..12].copy_from_slice(&self.payload_len.to_le_bytes());
        head[12..16].fill(0);
        head[16..24].copy_from_slice(&self.lsn.to_le_bytes());
        let crc = crc64(&[device_uuid, &head[..24], payload]);
        head[24..32].copy_from_slice(&crc.to_le_bytes());
        body.copy_from_slice(payload);
    }

    /// Parses the fixed header without checking the crc; `None` if these
    /// bytes cannot be a record header (zeros, padding, garbage).
    pub fn peek(bytes: &[u8]) -> Option<RecordHeader> {
        let b = bytes.get(..RECORD_HEADER_BYTES)?;
        if le_u32(b, 0) != RECORD_MAGIC || b[6] != 0 || b[7] != 0 || le_u32(b, 12) != 0 {
            return None;
        }
        let header = RecordHeader {
            kind: RecordKind::from_u8(b[4])?,
            flags: b[5],
            payload_len: le_u32(b, 8),
            lsn: le_u64(b, 16),
        };
        (header.total_len() <= MAX_RECORD_BYTES).then_some(header)
    }

    /// Checks the crc of a whole record (`bytes` = header + payload) written
    /// to the device `device_uuid`.
    pub fn verify(device_uuid: &[u8; 16], bytes: &[u8]) -> bool {
        if bytes.len() < RECORD_HEADER_BYTES {
            return false;
        }
        let stored = le_u64(bytes, 24);
        crc64(&[device_uuid, &bytes[..24], &bytes[RECORD_HEADER_BYTES..]]) == stored
    }
}

/// A chunk payload: the content hash, the raw length, then the stored bytes
/// (raw, or compressed as the flags say).
pub const CHUNK_PREFIX_BYTES: usize = 32 + 4;

pub fn encode_chunk_payload(hash: &[u8; 32], raw_len: u32, stored: &[u8]) -> Vec<u8> {
    let mut out = chunk_payload_unhashed(stored, stored.len());
    fill_chunk_prefix(&mut out, hash, raw_len);
    out
}

/// A chunk payload whose prefix is left blank, for `fill_chunk_prefix` once
/// the hash is known (bytes stored raw are then copied only once), with
/// room for `capacity` stored bytes.
pub fn chunk_payload_unhashed(stored: &[u8], capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(CHUNK_PREFIX_BYTES + capacity.max(stored.len()));
    out.resize(CHUNK_PREFIX_BYTES, 0);
    out.extend_from_slice(stored);
    out
}

pub fn fill_chunk_prefix(payload: &mut [u8], hash: &[u8; 32], raw_len: u32) {
    payload[..32].copy_from_slice(hash);
    payload[32..CHUNK_PREFIX_BYTES].copy_from_slice(&raw_len.to_le_bytes());
}

pub struct ChunkPayload<'a> {
    pub hash: [u8; 32],
    pub raw_len: u32,
    pub stored: &'a [u8],
}

pub fn decode_chunk_payload(payload: &[u8]) -> Option<ChunkPayload<'_>> {
    if payload.len() < CHUNK_PREFIX_BYTES {
        return None;
    }
    let mut hash = [0; 32];
    hash.copy_from_slice(&payload[..32]);
    Some(ChunkPayload {
        hash,
        raw_len: le_u32(payload, 32),
        stored: &payload[CHUNK_PREFIX_BYTES..],
    })
}

/// A reference from an object to one stored chunk. The hash names the
/// content: a read checks it, so a reference never yields another chunk's
/// bytes, and a chunk moved by compaction is found again through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub location: Location,
    pub raw_len: u32,
    pub hash: [u8; 32],
}

/// What S3 keeps about an object besides its bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub size: u64,
    /// Hex MD5, or md5-of-md5s followed by "-N" for multipart; no quotes.
    pub etag: String,
    pub last_modified_ms: u64,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub expires: Option<String>,
    pub user_metadata: Vec<(String, String)>,
    /// Additional checksums as (algorithm, base64 value), e.g. ("CRC32", "..").
    pub checksums: Vec<(String, String)>,
    /// Set by `strata fsck --repair` on an object whose data is damaged:
    /// why. Such an object lists but every read of it is an error.
    pub quarantined: Option<String>,
}

/// A PUT, a copy, or the object a multipart Complete makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectPut {
    pub bucket: String,
    pub key: String,
    pub meta: ObjectMeta,
    pub chunks: Vec<ChunkRef>,
    /// `If-None-Match: *`: applies only if the key does not exist then.
    pub if_absent: bool,
    /// A small object's data in the same record (a chunk payload, see
    /// `encode_chunk_payload`, with `inline_flags`), so that one write and
    /// one read serve it; empty when the data is in `chunks`. Encoded as
    /// bytes, not as a sequence of u8 (the same encoding, one call instead
    /// of one per byte).
    #[serde(with = "serde_bytes")]
    pub inline: Vec<u8>,
    pub inline_flags: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    pub bucket: String,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketOp {
    pub bucket: String,
    pub at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartCreate {
    pub upload_id: String,
    pub bucket: String,
    pub key: String,
    /// Headers given at create; size and etag are filled at complete.
    pub meta: ObjectMeta,
    pub initiated_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartPart {
    pub upload_id: String,
    pub part_number: u32,
    pub size: u64,
    pub etag: String,
    pub last_modified_ms: u64,
    pub checksums: Vec<(String, String)>,
    pub chunks: Vec<ChunkRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartComplete {
    pub upload_id: String,
    pub object: ObjectPut,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartAbort {
    pub upload_id: String,
}

/// One piece of an index snapshot; pieces are chained backwards so the
/// superblock needs to point at the last one only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointPart {
    pub previous: Option<Location>,
    pub part_index: u32,
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

/// A decoded record payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Chunks are read through `decode_chunk_payload`; only the hash is
    /// needed when replaying.
    Chunk {
        hash: [u8; 32],
        raw_len: u32,
    },
    ObjectPut(ObjectPut),
    Tombstone(Tombstone),
    BucketCreate(BucketOp),
    BucketDelete(BucketOp),
    MultipartCreate(MultipartCreate),
    MultipartPart(MultipartPart),
    MultipartComplete(MultipartComplete),
    MultipartAbort(MultipartAbort),
    Checkpoint(CheckpointPart),
}

impl Record {
    pub fn kind(&self) -> RecordKind {
        match self {
            Record::Chunk { .. } => RecordKind::Chunk,
            Record::ObjectPut(_) => RecordKind::ObjectPut,
            Record::Tombstone(_) => RecordKind::Tombstone,
            Record::BucketCreate(_) => RecordKind::BucketCreate,
            Record::BucketDelete(_) => RecordKind::BucketDelete,
            Record::MultipartCreate(_) => RecordKind::MultipartCreate,
            Record::MultipartPart(_) => RecordKind::MultipartPart,
            Record::MultipartComplete(_) => RecordKind::MultipartComplete,
            Record::MultipartAbort(_) => RecordKind::MultipartAbort,
            Record::Checkpoint(_) => RecordKind::Checkpoint,
        }
    }

    /// The payload bytes of every kind but chunks (which carry data and are
    /// built by `encode_chunk_payload`).
    pub fn encode_payload(&self) -> Vec<u8> {
        let encoded = match self {
            Record::Chunk { .. } => {
                unreachable!("chunk payloads are built by encode_chunk_payload")
            }
            Record::ObjectPut(r) => bincode::serialize(r),
            Record::Tombstone(r) => bincode::serialize(r),
            Record::BucketCreate(r) | Record::BucketDelete(r) => bincode::serialize(r),
            Record::MultipartCreate(r) => bincode::serialize(r),
            Record::MultipartPart(r) => bincode::serialize(r),
            Record::MultipartComplete(r) => bincode::serialize(r),
            Record::MultipartAbort(r) => bincode::serialize(r),
            Record::Checkpoint(r) => bincode::serialize(r),
        };
        // Serialising plain structs into a Vec cannot fail.
        encoded.unwrap_or_default()
    }

    /// Decodes a payload whose crc has been verified. Garbage that passed
    /// the crc (a bug, not bit rot) is still an error, never a panic.
    pub fn decode(kind: RecordKind, payload: &[u8]) -> Result<Record> {
        fn de<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T> {
            use bincode::Options;
            bincode::DefaultOptions::new()
                .with_fixint_encoding()
                .with_limit(MAX_RECORD_BYTES as u64)
                .reject_trailing_bytes()
                .deserialize(payload)
                .map_err(|e| Error::Decode(e.to_string()))
        }
        Ok(match kind {
            RecordKind::Chunk => {
                let chunk = decode_chunk_payload(payload)
                    .ok_or_else(|| Error::Decode("chunk payload too short".into()))?;
                Record::Chunk {
                    hash: chunk.hash,
                    raw_len: chunk.raw_len,
                }
            }
            RecordKind::ObjectPut => Record::ObjectPut(de(payload)?),
            RecordKind::Tombstone => Record::Tombstone(de(payload)?),
            RecordKind::BucketCreate => Record::BucketCreate(de(payload)?),
            RecordKind::BucketDelete => Record::BucketDelete(de(payload)?),
            RecordKind::MultipartCreate => Record::MultipartCreate(de(payload)?),
            RecordKind::MultipartPart => Record::MultipartPart(de(payload)?),
            RecordKind::MultipartComplete => Record::MultipartComplete(de(payload)?),
            RecordKind::MultipartAbort => Record::MultipartAbort(de(payload)?),
            RecordKind::Checkpoint => Record::Checkpoint(de(payload)?),
        })
    }
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut raw = [0; 4];
    raw.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(raw)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut raw = [0; 8];
    raw.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            kind: RecordKind::Tombstone,
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

    fn put() -> ObjectPut {
        ObjectPut {
            bucket: "b".into(),
            key: "k".into(),
            meta: meta(),
            chunks: vec![ChunkRef {
                location: Location {
                    segment: 1,
                    offset: 4096,
                    len: 68,
                },
                raw_len: 3,
                hash: [7; 32],
            }],
            if_absent: true,
            inline: vec![],
            inline_flags: 0,
        }
    }

    /// Pins the encoding of every record kind. If this fails, the on-disk
    /// format changed: bump FORMAT_VERSION and update the strings on purpose.
    #[test]
    fn golden_record_bytes() {
        let header = "43525453";
        let cases: Vec<(Record, &str)> = vec![
            (
                Record::ObjectPut(put()),
                "01000000000000006201000000000000006b03000000000000000100000000000000650700000000000000010100000000000000740000000000010000000000000001000000000000006b01000000000000007601000000000000000500000000000000435243333201000000000000006300010000000000000001000000001000004400000003000000070707070707070707070707070707070707070707070707070707070707070701000000000000000000",
            ),
            (
                Record::Tombstone(Tombstone { bucket: "b".into(), key: "k".into() }),
                "01000000000000006201000000000000006b",
            ),
            (
                Record::BucketCreate(BucketOp { bucket: "b".into(), at_ms: 9 }),
                "0100000000000000620900000000000000",
            ),
            (
                Record::BucketDelete(BucketOp { bucket: "b".into(), at_ms: 9 }),
                "0100000000000000620900000000000000",
            ),
            (
                Record::MultipartCreate(MultipartCreate {
                    upload_id: "u".into(),
                    bucket: "b".into(),
                    key: "k".into(),
                    meta: ObjectMeta::default(),
                    initiated_ms: 5,
                }),
                "01000000000000007501000000000000006201000000000000006b00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000500000000000000",
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
                Record::MultipartComplete(MultipartComplete { upload_id: "u".into(), object: put() }),
                "01000000000000007501000000000000006201000000000000006b03000000000000000100000000000000650700000000000000010100000000000000740000000000010000000000000001000000000000006b01000000000000007601000000000000000500000000000000435243333201000000000000006300010000000000000001000000001000004400000003000000070707070707070707070707070707070707070707070707070707070707070701000000000000000000",
            ),
            (
                Record::MultipartAbort(MultipartAbort { upload_id: "u".into() }),
                "010000000000000075",
            ),
            (
                Record::Checkpoint(CheckpointPart { previous: None, part_index: 1, bytes: vec![7] }),
                "0001000000010000000000000007",
            ),
        ];
        let mut mismatches = Vec::new();
        for (record, payload_hex) in cases {
            let payload = record.encode_payload();
            if hex::encode(&payload) != payload_hex {
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
        };
        let bytes = sb.encode();
        assert_eq!(
            hex::encode(&bytes[..61]),
            "5354524154415342050000000101010101010101010101010101010100004000000000000300000005000000000000000102000000002000006400000000"[..122].to_string()
                + ""
        );
        assert_eq!(Superblock::decode(&bytes), Ok(sb.clone()));
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
            hex::encode(&enc),
            "535452415441534705000000010000000101010101010101010101010101010109000000000000004d0000000000000007149389dd67d587"
        );
        assert_eq!(SegmentHeader::decode(&enc, &[1; 16]), Some(sh));
        let log = SegmentHeader {
            kind: SegmentKind::Log,
            ..sh
        };
        assert_eq!(SegmentHeader::decode(&log.encode(), &[1; 16]), Some(log));
        let mut unknown_kind = enc.clone();
        unknown_kind[12] = 7;
        let crc_at = unknown_kind.len() - 8;
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
    fn flipped_bit_fails_the_crc() {
        let payload = Record::Tombstone(Tombstone {
            bucket: "b".into(),
            key: "k".into(),
        })
        .encode_payload();
        let header = RecordHeader {
            kind: RecordKind::Tombstone,
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
}
