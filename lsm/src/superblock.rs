//! Reading, writing and creating superblocks: the device's identity and the
//! pointer to the newest checkpoint, in two slots written alternately so a
//! torn write never loses both.

use blockdev::{AlignedBuf, BlockDevice, BLOCK_SIZE};

use crate::error::{Error, Result};
use crate::format::{
    Superblock, SuperblockProblem, MIN_SEGMENT_BYTES, SEGMENTS_START, SUPERBLOCK_OFFSETS,
};

/// Why a device cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum OpenProblem {
    #[error("the device is not formatted for Strata ({0}); run `strata format` first")]
    Unformatted(SuperblockProblem),
    #[error(
        "the device is smaller than its superblock says ({actual} < {needed} bytes): truncated?"
    )]
    Truncated { actual: u64, needed: u64 },
    #[error(transparent)]
    Store(#[from] Error),
}

/// Writes a fresh pair of superblocks; the device gets a new identity, so
/// segments of any earlier format are recognised as foreign.
pub fn format_device(device: &dyn BlockDevice, segment_size_bytes: u64) -> Result<Superblock> {
    let segment_size_bytes = blockdev::align_down(segment_size_bytes);
    if segment_size_bytes < MIN_SEGMENT_BYTES {
        return Err(Error::TooLarge(format!(
            "segment size must be at least {MIN_SEGMENT_BYTES} bytes"
        )));
    }
    let usable = device.size_bytes().saturating_sub(SEGMENTS_START);
    let segment_count = (usable / segment_size_bytes) as u32;
    if segment_count < 2 {
        return Err(Error::NoSpace);
    }
    let mut sb = Superblock {
        device_uuid: *uuid::Uuid::new_v4().as_bytes(),
        segment_size_bytes,
        segment_count,
        generation: 0,
        checkpoint: None,
        format_version: crate::format::FORMAT_VERSION,
    };
    // Invalidate every segment header so nothing of an older life replays.
    // Headers that already read as zeros (a new sparse file) are left
    // alone, so formatting allocates nothing there.
    for segment in 0..segment_count {
        zero_header(device, sb.segment_offset(segment))?;
    }
    write_superblock(device, &sb)?;
    sb.generation = 1;
    write_superblock(device, &sb)?;
    Ok(sb)
}

/// Writes the superblock into its slot (by generation) and syncs.
/// Makes the block at `offset` read as zeros, writing only if it does not.
pub fn zero_header(device: &dyn BlockDevice, offset: u64) -> Result<()> {
    let block = device
        .read_at(AlignedBuf::zeroed(BLOCK_SIZE), offset)
        .map_err(Error::from_device)?;
    if block.iter().any(|&b| b != 0) {
        device
            .write_at(AlignedBuf::zeroed(BLOCK_SIZE), offset)
            .map_err(Error::from_device)?;
    }
    Ok(())
}

pub fn write_superblock(device: &dyn BlockDevice, sb: &Superblock) -> Result<()> {
    let bytes = sb.encode();
    let mut buf = AlignedBuf::zeroed(BLOCK_SIZE);
    buf[..bytes.len()].copy_from_slice(&bytes);
    device
        .write_at(buf, SUPERBLOCK_OFFSETS[sb.slot()])
        .map_err(Error::from_device)?;
    device.sync().map_err(Error::from_device)
}

/// The other valid slot, older than `newest`: it names the previous
/// checkpoint, the fallback when the newest one is damaged.
pub fn previous_superblock(device: &dyn BlockDevice, newest: &Superblock) -> Option<Superblock> {
    SUPERBLOCK_OFFSETS.iter().find_map(|&offset| {
        let block = device
            .read_at(AlignedBuf::zeroed(BLOCK_SIZE), offset)
            .ok()?;
        Superblock::decode(&block)
            .ok()
            .filter(|sb| sb.generation < newest.generation && sb.device_uuid == newest.device_uuid)
    })
}

/// The valid superblock with the highest generation.
pub fn read_superblock(device: &dyn BlockDevice) -> std::result::Result<Superblock, OpenProblem> {
    let mut best: Option<Superblock> = None;
    let mut problem = SuperblockProblem::NotStrata;
    for offset in SUPERBLOCK_OFFSETS {
        let block = device
            .read_at(AlignedBuf::zeroed(BLOCK_SIZE), offset)
            .map_err(|e| OpenProblem::Store(Error::from_device(e)))?;
        match Superblock::decode(&block) {
            Ok(sb) => {
                if best.as_ref().is_none_or(|b| sb.generation > b.generation) {
                    best = Some(sb);
                }
            }
            Err(p) => {
                if p != SuperblockProblem::NotStrata {
                    problem = p;
                }
            }
        }
    }
    let sb = best.ok_or(OpenProblem::Unformatted(problem))?;
    let needed = sb.segment_offset(sb.segment_count);
    if device.size_bytes() < needed {
        return Err(OpenProblem::Truncated {
            actual: device.size_bytes(),
            needed,
        });
    }
    Ok(sb)
}
