//! Loading the checkpoint the superblock names (lsm's `Store::checkpoint`
//! writes them): every part verified, the chain followed backwards.

use blockdev::BlockDevice;
use lsm::format::{Record, RecordKind, Superblock};
use lsm::reader::read_record;
use lsm::Index;

use crate::error::RecoveryError;

/// Bounds a corrupt chain: 64 TiB of checkpoint is far beyond any index.
const MAX_PARTS: u32 = 1 << 24;

/// Loads the checkpoint the superblock names, verifying every part.
pub fn load_checkpoint(
    device: &dyn BlockDevice,
    sb: &Superblock,
) -> Result<Option<Index>, RecoveryError> {
    let Some(mut location) = sb.checkpoint else {
        return Ok(None);
    };
    let mut pieces: Vec<Vec<u8>> = Vec::new();
    // Parts are read newest first and count down to 0; each part must carry
    // exactly the next lower index, so a damaged chain that names itself or
    // a later part ends instead of looping.
    let mut expected_index: Option<u32> = None;
    loop {
        let (header, payload) = read_record(device, sb, location)?;
        if header.kind != RecordKind::Checkpoint {
            return Err(RecoveryError::CheckpointUnreadable(format!(
                "expected a checkpoint record at segment {}, offset {}",
                location.segment, location.offset
            )));
        }
        let Record::Checkpoint(part) = Record::decode(header.kind, &payload)? else {
            return Err(RecoveryError::CheckpointUnreadable(
                "wrong record kind".into(),
            ));
        };
        let in_order = match expected_index {
            None => part.part_index < MAX_PARTS,
            Some(expected) => part.part_index == expected,
        };
        if !in_order {
            return Err(RecoveryError::CheckpointUnreadable(format!(
                "checkpoint part {} is out of order",
                part.part_index
            )));
        }
        pieces.push(part.bytes);
        match (part.previous, part.part_index.checked_sub(1)) {
            (Some(previous), Some(next_index)) => {
                location = previous;
                expected_index = Some(next_index);
            }
            (None, None) => break,
            _ => {
                return Err(RecoveryError::CheckpointUnreadable(
                    "checkpoint part chain is inconsistent".into(),
                ))
            }
        }
    }
    pieces.reverse();
    let compressed = pieces.concat();
    let encoded = zstd::stream::decode_all(&compressed[..])
        .map_err(|e| RecoveryError::CheckpointUnreadable(e.to_string()))?;
    // The superblock slot's format says how its checkpoint was written.
    let index = match sb.format_version {
        5 => lsm::format::v5::decode_index(&encoded)
            .map_err(|e| RecoveryError::CheckpointUnreadable(e.to_string()))?,
        6 => lsm::format::v6::decode_index(&encoded)
            .map_err(|e| RecoveryError::CheckpointUnreadable(e.to_string()))?,
        7 => lsm::format::v7::decode_index(&encoded)
            .map_err(|e| RecoveryError::CheckpointUnreadable(e.to_string()))?,
        _ => bincode::deserialize::<Index>(&encoded)
            .map_err(|e| RecoveryError::CheckpointUnreadable(e.to_string()))?,
    };
    Ok(Some(index))
}
