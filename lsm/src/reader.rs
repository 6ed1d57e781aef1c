//! Reading one record: exactly the blocks that hold it, checked against its
//! crc before a byte is used.

use blockdev::{align_down, align_up, AlignedBuf, BlockDevice};
use bytes::Bytes;

use crate::chunk::{content_hash, decode_chunk};
use crate::cipher::{DataKey, SEAL_OVERHEAD};
use crate::error::{Error, Result};
use crate::format::{
    decode_chunk_payload, flags, ChunkRef, Location, Record, RecordHeader, RecordKind, Superblock,
    RECORD_HEADER_BYTES,
};

/// Reads and verifies the record at `location`; returns its header and
/// payload. The payload stays in the buffer it was read into, so a chunk's
/// bytes are served without a copy; the blocks' padding around the record
/// (under 8 KiB) lives as long as they do.
pub fn read_record(
    device: &dyn BlockDevice,
    superblock: &Superblock,
    location: Location,
) -> Result<(RecordHeader, Bytes)> {
    let corrupt = |reason: &str| Error::Corruption {
        location,
        reason: reason.to_string(),
    };
    if location.segment >= superblock.segment_count
        || location.offset as u64 + location.len as u64 > superblock.segment_size_bytes
        || (location.len as usize) < RECORD_HEADER_BYTES
    {
        return Err(corrupt("location outside the device"));
    }
    let start = superblock.segment_offset(location.segment) + location.offset as u64;
    let first = align_down(start);
    let last = align_up(start + location.len as u64);
    let buf = device
        .read_at(AlignedBuf::zeroed((last - first) as usize), first)
        .map_err(Error::from_device)?;
    let skip = (start - first) as usize;
    let end = skip + location.len as usize;
    let bytes = &buf[skip..end];
    let header = RecordHeader::peek(bytes).ok_or_else(|| corrupt("bad record header"))?;
    if header.total_len() != location.len as usize {
        return Err(corrupt("record length differs from the index"));
    }
    if !RecordHeader::verify(&superblock.device_uuid, bytes) {
        tracing::error!(
            segment = location.segment,
            offset = location.offset,
            "crc mismatch on read"
        );
        return Err(corrupt("crc mismatch"));
    }
    let payload = Bytes::from_owner(buf).slice(skip + RECORD_HEADER_BYTES..end);
    Ok((header, payload))
}

/// The record flags and chunk payload (prefix and stored bytes) of the
/// chunk a reference names: a chunk record's payload, or a small object's
/// inline data.
fn chunk_payload(
    device: &dyn BlockDevice,
    superblock: &Superblock,
    chunk: &ChunkRef,
) -> Result<(u8, Bytes)> {
    let (header, payload) = read_record(device, superblock, chunk.location)?;
    match header.kind {
        RecordKind::Chunk => Ok((header.flags, payload)),
        kind if kind.carries_inline_data() => match Record::decode(header.kind, &payload)? {
            Record::Object(put) if !put.inline.is_empty() => {
                Ok((put.inline_flags, put.inline.into()))
            }
            _ => Err(Error::Corruption {
                location: chunk.location,
                reason: "object record without inline data".into(),
            }),
        },
        other => Err(Error::Corruption {
            location: chunk.location,
            reason: format!("expected a chunk, found {other:?}"),
        }),
    }
}

/// Reads and decodes one chunk: a chunk record, or a small object's data
/// inline in its object record. Its content hash must be the reference's;
/// a sealed chunk needs its object's data key.
pub fn read_chunk(
    device: &dyn BlockDevice,
    superblock: &Superblock,
    chunk: &ChunkRef,
    key: Option<&DataKey>,
) -> Result<Bytes> {
    let (flags, payload) = chunk_payload(device, superblock, chunk)?;
    let raw = decode_chunk(chunk.location, flags, payload, &chunk.hash, key)?;
    if raw.len() != chunk.raw_len as usize {
        return Err(Error::Corruption {
            location: chunk.location,
            reason: "chunk length differs from the manifest".into(),
        });
    }
    Ok(raw)
}

/// Checks a sealed chunk without its key (fsck): its crc, that it is the
/// chunk the reference names, sealed, and that its hash (of the stored
/// bytes) matches them. Only the key can check its tag.
pub fn check_sealed_chunk(
    device: &dyn BlockDevice,
    superblock: &Superblock,
    chunk: &ChunkRef,
) -> Result<()> {
    let corrupt = |reason: &str| Error::Corruption {
        location: chunk.location,
        reason: reason.to_string(),
    };
    let (record_flags, payload) = chunk_payload(device, superblock, chunk)?;
    let decoded =
        decode_chunk_payload(&payload).ok_or_else(|| corrupt("chunk payload too short"))?;
    if decoded.hash != chunk.hash {
        return Err(Error::Moved(chunk.location));
    }
    if record_flags & flags::ENCRYPTED == 0 {
        return Err(corrupt("an encrypted object's chunk is not sealed"));
    }
    if decoded.raw_len != chunk.raw_len || decoded.stored.len() < SEAL_OVERHEAD {
        return Err(corrupt("sealed chunk length mismatch"));
    }
    if content_hash(decoded.stored) != chunk.hash {
        return Err(corrupt("sealed chunk differs from its hash"));
    }
    Ok(())
}
