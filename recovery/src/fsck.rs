//! The checks behind `strata fsck`: superblocks, every segment header, every
//! record's crc (by replaying the whole log), every live object's chunks,
//! and whether the checkpoint agrees with the log. Read-only.

use std::collections::BTreeMap;

use blockdev::BlockDevice;
use lsm::{Index, ObjectEntry};
use serde::Serialize;

use crate::checkpoint::load_checkpoint;
use crate::error::RecoveryError;
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
    /// "none", "agrees", or what differs / why it could not be read.
    pub checkpoint: String,
}

impl FsckReport {
    /// A torn tail is what a crash leaves and recovery cuts; anything else
    /// is a problem.
    pub fn clean(&self) -> bool {
        self.damaged_ranges.iter().all(|d| d.torn_tail)
            && self.unreadable_objects.is_empty()
            && (self.checkpoint == "none" || self.checkpoint == "agrees")
    }
}

type Objects = BTreeMap<(String, String), (String, u64, Vec<lsm::ChunkRef>)>;

fn objects(index: &Index) -> Objects {
    index
        .all_objects()
        .map(|(b, k, o): (&str, &str, &std::sync::Arc<ObjectEntry>)| {
            (
                (b.to_string(), k.to_string()),
                (o.meta.etag.clone(), o.meta.size, o.chunks.clone()),
            )
        })
        .collect()
}

pub fn check(device: &dyn BlockDevice) -> Result<FsckReport, RecoveryError> {
    let sb = lsm::read_superblock(device)?;
    let headers = read_segment_headers(device, &sb)?;
    let mut scan = ScanReport::default();
    let mut full = Index::default();
    replay(device, &sb, &mut full, None, &mut scan)?;

    let mut unreadable = Vec::new();
    let mut chunks_checked = 0;
    for (bucket, key, entry) in full.all_objects() {
        for chunk in &entry.chunks {
            chunks_checked += 1;
            if let Err(e) = lsm::reader::read_chunk(device, &sb, chunk) {
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

    let checkpoint = match load_checkpoint(device, &sb) {
        Ok(None) => "none".to_string(),
        Ok(Some(mut from_checkpoint)) => {
            let tail = from_checkpoint.tail;
            let mut ignored = ScanReport::default();
            match replay(device, &sb, &mut from_checkpoint, tail, &mut ignored) {
                Ok(_) => {
                    let (a, b) = (objects(&from_checkpoint), objects(&full));
                    if a == b {
                        "agrees".to_string()
                    } else {
                        let differing = a
                            .keys()
                            .chain(b.keys())
                            .find(|k| a.get(*k) != b.get(*k))
                            .map(|(bucket, key)| format!("{bucket}/{key}"))
                            .unwrap_or_default();
                        format!("disagrees with the log (first difference: {differing})")
                    }
                }
                Err(e) => format!("does not fit the log: {e}"),
            }
        }
        Err(e) => format!("unreadable: {e}"),
    };

    Ok(FsckReport {
        superblock_generation: sb.generation,
        segment_size_bytes: sb.segment_size_bytes,
        segments_used: headers.used.len(),
        segments_free: headers.free.len(),
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
        objects_checked: full.object_count(),
        chunks_checked,
        unreadable_objects: unreadable,
        checkpoint,
    })
}
