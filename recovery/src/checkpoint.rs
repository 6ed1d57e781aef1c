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
        let expected_index = pieces.len() as u32;
        pieces.push(part.bytes);
        match part.previous {
            Some(previous) if part.part_index > 0 && expected_index < MAX_PARTS => {
                location = previous
            }
            None if part.part_index == 0 => break,
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
    let index: Index = bincode::deserialize(&encoded)
        .map_err(|e| RecoveryError::CheckpointUnreadable(e.to_string()))?;
    Ok(Some(index))
}
