//! The checks behind `strata fsck`: superblocks, every segment header, every
//! record's crc (a scan of the whole log), that the checkpoint loads and
//! fits the log, that every live object's chunks read back with their
//! hashes, and that reference counts agree with a recount. Read-only.

use blockdev::BlockDevice;
use lsm::{Catalog, SpaceMap};
use serde::Serialize;

use crate::error::RecoveryError;
use crate::rebuild;
use crate::scan::{read_segment_headers, replay, Damage, ScanReport};

#[derive(Debug, Clone, Serialize)]
pub struct DamagedRange {
    pub segment: u32,
    pub offset: u32,
    pub len: u32,
    /// The torn tail left by a crash (expected), or damage (not expected).
    pub torn_tail: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnreadableObject {
    pub bucket: String,
    pub key: String,
    pub segment: u32,
    pub offset: u32,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FsckReport {
    pub superblock_generation: u64,
    pub segment_size_bytes: u64,
    pub segments_used: usize,
    pub segments_free: usize,
    pub records_applied: u64,
    pub bytes_scanned: u64,
    pub damaged_ranges: Vec<DamagedRange>,
    pub objects_checked: usize,
    pub chunks_checked: usize,
    pub unreadable_objects: Vec<UnreadableObject>,
    /// "none", "agrees", or why it could not be used.
    pub checkpoint: String,
    /// Reference counts or liveness that differ from a recount.
    pub space_differences: Vec<String>,
}

impl FsckReport {
    /// A torn tail is what a crash leaves and recovery cuts; anything else
    /// is a problem.
    pub fn clean(&self) -> bool {
        self.damaged_ranges.iter().all(|d| d.torn_tail)
            && self.unreadable_objects.is_empty()
            && self.space_differences.is_empty()
            && (self.checkpoint == "none" || self.checkpoint == "agrees")
    }
}

pub fn check(device: &dyn BlockDevice) -> Result<FsckReport, RecoveryError> {
    let headers = {
        let sb = lsm::read_superblock(device)?;
        read_segment_headers(device, &sb)?
    };
    // The state a server would serve: checkpoint plus what follows it.
    let recovered = rebuild(device, false)?;
    let sb = &recovered.superblock;
    // Every record's crc, in every segment in use, by a scan of the whole
    // log into a scratch catalog (its state is not used: segments released
    // by compaction are gone from it).
    let mut scan = ScanReport::default();
    replay(device, sb, &mut Catalog::default(), None, &mut scan)?;
    scan.damage.extend(
        recovered
            .scan
            .damage
            .iter()
            .filter(|d| !scan.damage.contains(d))
            .cloned()
            .collect::<Vec<_>>(),
    );

    let index = &recovered.catalog.index;
    let mut unreadable = Vec::new();
    let mut chunks_checked = 0;
    for (bucket, key, entry) in index.all_objects() {
        for chunk in &entry.chunks {
            chunks_checked += 1;
            if let Err(e) = lsm::reader::read_chunk(device, sb, chunk) {
                unreadable.push(UnreadableObject {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                    segment: chunk.location.segment,
                    offset: chunk.location.offset,
                    reason: e.to_string(),
                });
                break;
            }
        }
    }

    let checkpoint = match (&recovered.checkpoint_problem, sb.checkpoint) {
        (Some(problem), _) => format!("unusable: {problem}"),
        (None, None) => "none".to_string(),
        (None, Some(_)) => "agrees".to_string(),
    };
    let recount = SpaceMap::recount(index);
    let space_differences = recovered.catalog.space.differences(&recount);

    Ok(FsckReport {
        superblock_generation: sb.generation,
        segment_size_bytes: sb.segment_size_bytes,
        segments_used: headers.used.len(),
        segments_free: recovered.start.free_segments.len(),
        records_applied: scan.records_applied,
        bytes_scanned: scan.bytes_scanned,
        damaged_ranges: scan
            .damage
            .iter()
            .map(|d: &Damage| DamagedRange {
                segment: d.segment,
                offset: d.offset,
                len: d.len,
                torn_tail: d.torn_tail,
            })
            .collect(),
        objects_checked: index.object_count(),
        chunks_checked,
        unreadable_objects: unreadable,
        checkpoint,
        space_differences,
    })
}
