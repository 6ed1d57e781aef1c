//! Checkpoints: the whole index serialised with bincode, zstd-compressed,
//! written through the log as a backward-chained run of checksummed records,
//! and then named by the superblock. Restart loads it and replays only what
//! was written after it.

use blockdev::BlockDevice;
use lsm::format::{CheckpointPart, Record, RecordKind, Superblock};
use lsm::reader::read_record;
use lsm::{Index, Location, PendingRecord, Store};

use crate::error::RecoveryError;

const PART_BYTES: usize = 4 << 20;
/// Bounds a corrupt chain: 64 TiB of checkpoint is far beyond any index.
const MAX_PARTS: u32 = 1 << 24;

/// What a written checkpoint covered.
#[derive(Debug, Clone)]
pub struct CheckpointReport {
    pub objects: usize,
    pub applied_lsn: u64,
    pub bytes: usize,
    pub parts: u32,
}

/// Writes a checkpoint of the store's current index and points the
/// superblock at it. Foreground writes continue meanwhile.
pub async fn write_checkpoint(store: &Store) -> Result<CheckpointReport, RecoveryError> {
    let index = store.snapshot();
    let objects = index.object_count();
    let applied_lsn = index.applied_lsn;
    let encoded = bincode::serialize(&index)
        .map_err(|e| RecoveryError::CheckpointUnreadable(e.to_string()))?;
    drop(index);
    let compressed = zstd::bulk::compress(&encoded, 1)
        .map_err(|e| RecoveryError::CheckpointUnreadable(e.to_string()))?;
    let part_bytes = PART_BYTES.min(store.superblock().segment_size_bytes as usize / 4);
    let mut previous: Option<Location> = None;
    let mut parts = 0;
    for (i, piece) in compressed.chunks(part_bytes).enumerate() {
        let record = Record::Checkpoint(CheckpointPart {
            previous,
            part_index: i as u32,
            bytes: piece.to_vec(),
        });
        let committed = store.append(vec![PendingRecord::new(record)]).await?;
        committed.outcome?;
        previous = committed.locations.first().copied();
        parts += 1;
    }
    let last =
        previous.ok_or_else(|| RecoveryError::CheckpointUnreadable("empty checkpoint".into()))?;
    store.commit_checkpoint(last)?;
    tracing::info!(
        objects,
        applied_lsn,
        bytes = compressed.len(),
        parts,
        "checkpoint written"
    );
    Ok(CheckpointReport {
        objects,
        applied_lsn,
        bytes: compressed.len(),
        parts,
    })
}

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
