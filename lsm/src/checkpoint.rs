//! Writing checkpoints: the whole index serialised with bincode,
//! zstd-compressed, appended through the log as a backward-chained run of
//! checksummed records, then named by the superblock. Restart loads the
//! newest one (recovery) and replays only what was written after it, and
//! compaction frees only segments a committed checkpoint covers.

use crate::error::{Error, Result};
use crate::format::{CheckpointPart, Location, Record};
use crate::store::{Checkpointed, Store};
use crate::writer::PendingRecord;

const PART_BYTES: usize = 4 << 20;

/// What a written checkpoint covered.
#[derive(Debug, Clone)]
pub struct CheckpointReport {
    pub objects: usize,
    pub applied_lsn: u64,
    pub bytes: usize,
    pub parts: u32,
    /// Every segment opened before this sequence is covered: replay never
    /// reads it again.
    pub covered_sequence: u64,
}

impl Store {
    /// Writes a checkpoint of the current index and points the superblock
    /// at it. Foreground writes continue meanwhile; checkpoints are taken
    /// one at a time, so the superblock only ever moves forward.
    pub async fn checkpoint(&self) -> Result<CheckpointReport> {
        let mut covered = self.checkpoint_lock().lock().await;
        let index = self.snapshot();
        let objects = index.object_count();
        let applied_lsn = index.applied_lsn;
        let covered_sequence = index.tail.map_or(0, |t| t.sequence);
        let encoded = bincode::serialize(&index).map_err(|e| Error::Decode(e.to_string()))?;
        drop(index);
        let compressed =
            zstd::bulk::compress(&encoded, 1).map_err(|e| Error::Decode(e.to_string()))?;
        let part_bytes = PART_BYTES.min(self.superblock().segment_size_bytes as usize / 4);
        let mut previous: Option<Location> = None;
        let mut parts = 0;
        for (i, piece) in compressed.chunks(part_bytes).enumerate() {
            let record = Record::Checkpoint(CheckpointPart {
                previous,
                part_index: i as u32,
                bytes: piece.to_vec(),
            });
            let committed = self.append(vec![PendingRecord::new(record)]).await?;
            committed.outcome?;
            previous = committed.locations.first().copied();
            parts += 1;
        }
        let last = previous.ok_or_else(|| Error::Failed("empty checkpoint".into()))?;
        self.commit_checkpoint(last)?;
        *covered = Checkpointed {
            covered_sequence,
            applied_lsn: self.applied_lsn(),
        };
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
            covered_sequence,
        })
    }
}
