//! Reading one record: exactly the blocks that hold it, checked against its
//! crc before a byte is used.

use blockdev::{align_down, align_up, AlignedBuf, BlockDevice};

use crate::error::{Error, Result};
use crate::format::{Location, RecordHeader, Superblock, RECORD_HEADER_BYTES};

/// Reads and verifies the record at `location`; returns its header and payload.
pub fn read_record(
    device: &dyn BlockDevice,
    superblock: &Superblock,
    location: Location,
) -> Result<(RecordHeader, Vec<u8>)> {
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
    let bytes = &buf[skip..skip + location.len as usize];
    let header = RecordHeader::peek(bytes).ok_or_else(|| corrupt("bad record header"))?;
    if header.total_len() != location.len as usize {
        return Err(corrupt("record length differs from the index"));
    }
    if !RecordHeader::verify(bytes) {
        tracing::error!(
            segment = location.segment,
            offset = location.offset,
            "crc mismatch on read"
        );
        return Err(corrupt("crc mismatch"));
    }
    Ok((header, bytes[RECORD_HEADER_BYTES..].to_vec()))
}
