//! Reading one record: exactly the blocks that hold it, checked against its
//! crc before a byte is used.

use blockdev::{align_down, align_up, AlignedBuf, BlockDevice};
use bytes::Bytes;

use crate::chunk::decode_chunk;
use crate::error::{Error, Result};
use crate::format::{
    ChunkRef, Location, Record, RecordHeader, RecordKind, Superblock, RECORD_HEADER_BYTES,
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

/// Reads and decodes one chunk: a chunk record, or a small object's data
/// inline in its object record. Its content hash must be the reference's.
pub fn read_chunk(
    device: &dyn BlockDevice,
    superblock: &Superblock,
    chunk: &ChunkRef,
) -> Result<Bytes> {
    let corrupt = |reason: String| Error::Corruption {
        location: chunk.location,
        reason,
    };
    let (header, payload) = read_record(device, superblock, chunk.location)?;
    let raw = match header.kind {
        RecordKind::Chunk => decode_chunk(chunk.location, header.flags, payload, &chunk.hash)?,
        kind if kind.carries_inline_data() => match Record::decode(header.kind, &payload)? {
            Record::Object(put) if !put.inline.is_empty() => decode_chunk(
                chunk.location,
                put.inline_flags,
                put.inline.into(),
                &chunk.hash,
            )?,
            _ => return Err(corrupt("object record without inline data".into())),
        },
        other => return Err(corrupt(format!("expected a chunk, found {other:?}"))),
    };
    if raw.len() != chunk.raw_len as usize {
        return Err(corrupt("chunk length differs from the manifest".into()));
    }
    Ok(raw)
}
