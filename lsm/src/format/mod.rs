//! The bytes on the device, defined once: superblock, segment header, record
//! header, and (in `records.rs`) every record payload; `v5.rs` reads what
//! format version 5 wrote. Every reader and writer goes through this
//! module; the golden-bytes tests in `tests.rs` make a format change
//! deliberate.
//!
//! Device layout:
//!   [superblock A @0][superblock B @4096] ... [segment 0 @1 MiB][segment 1] ...
//! Segment layout: [segment header block][records, each batch block-aligned].
//! Record layout: [32-byte header][payload]; crc64 over the device's uuid,
//! the header (but its crc) and the payload.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod access;
mod encryption;
mod records;
pub mod v5;
pub mod v6;
pub mod v7;

pub use access::*;
pub use encryption::*;
pub use records::*;

/// Version 8: encrypted chunks (the `ENCRYPTED` flag), an object's
/// wrapped data key (a `MetaItem`, changed by a `VersionChange` when a
/// master key rotates) and a bucket's default encryption (a
/// `BucketSetting`); the checkpoint's bucket configuration grew that
/// field (`v7.rs` reads the previous one).
/// Version 7: accounts, users, keys and policies (record kind 18), and a
/// bucket's owner, policy, ACL, CORS, ownership and public access block
/// (new `BucketSetting` variants), an object's ACL (a new `MetaItem`); the
/// checkpoint's bucket configuration grew those fields (`v6.rs` reads the
/// previous one). Version 6: versions, delete markers, object lock, tags, lifecycle and
/// conditional writes (record kinds 11 to 17; see DESIGN.md). Version 5: a record's crc covers the device's uuid, so that a record
/// left by an earlier format of the device never passes for one of this
/// store's (it kept a valid crc and numbers of its own). Version 4: segment
/// headers say which head wrote them (log or compaction). Version 3 gave
/// chunk references the chunk's content hash (dedup, relocation); version 2
/// added inline data to object records.
pub const FORMAT_VERSION: u32 = 8;
/// The oldest format this build opens: a device written by the previous
/// release opens with all its data.
pub const OLDEST_READABLE_VERSION: u32 = 5;
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
    /// The format this superblock was written in (and its checkpoint);
    /// a superblock is always written in `FORMAT_VERSION`.
    pub format_version: u32,
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
        if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&version) {
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
            format_version: version,
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
    #[error("format version {0} is not supported (this build reads {OLDEST_READABLE_VERSION} to {FORMAT_VERSION})")]
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
        let version = le_u32(b, 8);
        if b[..8] != SEGMENT_MAGIC || !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&version)
        {
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

/// What a record is. A kind whose payload layout changed is not reused:
/// the old number stays, read only (`v5.rs`), and the new layout gets a
/// new number, so a record says by itself how to decode it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordKind {
    Chunk = 1,
    /// Format 5's object put (read only).
    ObjectPutV5 = 2,
    /// Format 5's tombstone (read only).
    TombstoneV5 = 3,
    /// Format 5's bucket create (read only).
    BucketCreateV5 = 4,
    BucketDelete = 5,
    /// Format 5's multipart create (read only).
    MultipartCreateV5 = 6,
    MultipartPart = 7,
    /// Format 5's multipart complete (read only).
    MultipartCompleteV5 = 8,
    MultipartAbort = 9,
    Checkpoint = 10,
    Object = 11,
    Delete = 12,
    MultipartCreate = 13,
    MultipartComplete = 14,
    VersionUpdate = 15,
    BucketConfig = 16,
    BucketCreate = 17,
    Iam = 18,
}

impl RecordKind {
    pub fn from_u8(v: u8) -> Option<RecordKind> {
        use RecordKind::*;
        Some(match v {
            1 => Chunk,
            2 => ObjectPutV5,
            3 => TombstoneV5,
            4 => BucketCreateV5,
            5 => BucketDelete,
            6 => MultipartCreateV5,
            7 => MultipartPart,
            8 => MultipartCompleteV5,
            9 => MultipartAbort,
            10 => Checkpoint,
            11 => Object,
            12 => Delete,
            13 => MultipartCreate,
            14 => MultipartComplete,
            15 => VersionUpdate,
            16 => BucketConfig,
            17 => BucketCreate,
            18 => Iam,
            _ => return None,
        })
    }

    /// Kinds that may hold a small object's data inline.
    pub fn carries_inline_data(self) -> bool {
        matches!(self, RecordKind::Object | RecordKind::ObjectPutV5)
    }
}

/// Record flags. Only chunk records use them today.
pub mod flags {
    /// The stored bytes are zstd-compressed.
    pub const ZSTD: u8 = 1;
    /// Before compression the bytes were split into 4 byte planes (float32).
    pub const SHUFFLE4: u8 = 2;
    /// Format 8: the stored bytes are sealed under their object's data key
    /// (`cipher.rs`), after any compression.
    pub const ENCRYPTED: u8 = 4;
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

/// A decoded record payload, in the current layout (records of older
/// kinds are turned into it as they are decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Chunks are read through `decode_chunk_payload`; only the hash is
    /// needed when replaying.
    Chunk {
        hash: [u8; 32],
        raw_len: u32,
    },
    Object(ObjectPut),
    Delete(Delete),
    BucketCreate(BucketCreate),
    BucketDelete(BucketOp),
    BucketConfig(BucketConfigChange),
    VersionUpdate(VersionUpdate),
    MultipartCreate(MultipartCreate),
    MultipartPart(MultipartPart),
    MultipartComplete(MultipartComplete),
    MultipartAbort(MultipartAbort),
    Checkpoint(CheckpointPart),
    Iam(IamUpdate),
}

impl Record {
    pub fn kind(&self) -> RecordKind {
        match self {
            Record::Chunk { .. } => RecordKind::Chunk,
            Record::Object(_) => RecordKind::Object,
            Record::Delete(_) => RecordKind::Delete,
            Record::BucketCreate(_) => RecordKind::BucketCreate,
            Record::BucketDelete(_) => RecordKind::BucketDelete,
            Record::BucketConfig(_) => RecordKind::BucketConfig,
            Record::VersionUpdate(_) => RecordKind::VersionUpdate,
            Record::MultipartCreate(_) => RecordKind::MultipartCreate,
            Record::MultipartPart(_) => RecordKind::MultipartPart,
            Record::MultipartComplete(_) => RecordKind::MultipartComplete,
            Record::MultipartAbort(_) => RecordKind::MultipartAbort,
            Record::Checkpoint(_) => RecordKind::Checkpoint,
            Record::Iam(_) => RecordKind::Iam,
        }
    }

    /// The payload bytes of every kind but chunks (which carry data and are
    /// built by `encode_chunk_payload`).
    pub fn encode_payload(&self) -> Vec<u8> {
        let encoded = match self {
            Record::Chunk { .. } => {
                unreachable!("chunk payloads are built by encode_chunk_payload")
            }
            Record::Object(r) => bincode::serialize(r),
            Record::Delete(r) => bincode::serialize(r),
            Record::BucketCreate(r) => bincode::serialize(r),
            Record::BucketDelete(r) => bincode::serialize(r),
            Record::BucketConfig(r) => bincode::serialize(r),
            Record::VersionUpdate(r) => bincode::serialize(r),
            Record::MultipartCreate(r) => bincode::serialize(r),
            Record::MultipartPart(r) => bincode::serialize(r),
            Record::MultipartComplete(r) => bincode::serialize(r),
            Record::MultipartAbort(r) => bincode::serialize(r),
            Record::Checkpoint(r) => bincode::serialize(r),
            Record::Iam(r) => bincode::serialize(r),
        };
        // Serialising plain structs into a Vec cannot fail.
        encoded.unwrap_or_default()
    }

    /// Decodes a payload whose crc has been verified. Garbage that passed
    /// the crc (a bug, not bit rot) is still an error, never a panic.
    pub fn decode(kind: RecordKind, payload: &[u8]) -> Result<Record> {
        use RecordKind as K;
        Ok(match kind {
            K::Chunk => {
                let chunk = decode_chunk_payload(payload)
                    .ok_or_else(|| Error::Decode("chunk payload too short".into()))?;
                Record::Chunk {
                    hash: chunk.hash,
                    raw_len: chunk.raw_len,
                }
            }
            K::Object => Record::Object(decode_bincode(payload)?),
            K::Delete => Record::Delete(decode_bincode(payload)?),
            K::BucketCreate => Record::BucketCreate(decode_bincode(payload)?),
            K::BucketDelete => Record::BucketDelete(decode_bincode(payload)?),
            K::BucketConfig => Record::BucketConfig(decode_bincode(payload)?),
            K::VersionUpdate => Record::VersionUpdate(decode_bincode(payload)?),
            K::MultipartCreate => Record::MultipartCreate(decode_bincode(payload)?),
            K::MultipartPart => Record::MultipartPart(decode_bincode(payload)?),
            K::MultipartComplete => Record::MultipartComplete(decode_bincode(payload)?),
            K::MultipartAbort => Record::MultipartAbort(decode_bincode(payload)?),
            K::Checkpoint => Record::Checkpoint(decode_bincode(payload)?),
            K::Iam => Record::Iam(decode_bincode(payload)?),
            K::ObjectPutV5
            | K::TombstoneV5
            | K::BucketCreateV5
            | K::MultipartCreateV5
            | K::MultipartCompleteV5 => v5::decode(kind, payload)?,
        })
    }
}

/// A bounded, strict bincode decode (the layout `bincode::serialize` writes).
pub(crate) fn decode_bincode<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T> {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_limit(MAX_RECORD_BYTES as u64)
        .reject_trailing_bytes()
        .deserialize(payload)
        .map_err(|e| Error::Decode(e.to_string()))
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
mod tests;
