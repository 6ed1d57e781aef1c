//! The checks behind `strata fsck`: superblocks, every segment header, every
//! record's crc (a scan of the whole log and of every compaction segment), that the checkpoint loads and
//! fits the log, that every live object's chunks read back with their
//! hashes, that reference counts agree with a recount, and that accounts,
//! users, keys and policies fit together (`access_check.rs`). Read-only.

use blockdev::BlockDevice;
use lsm::format::SegmentKind;
use lsm::{Catalog, SpaceMap};
use serde::Serialize;

use crate::error::RecoveryError;
use crate::progress::Progress;
use crate::rebuild;
use crate::scan::{
    read_segment_headers, replay, replayed, scan_compaction_segment, Damage, ScanReport,
    SegmentHeaders,
};

#[derive(Debug, Clone, Serialize)]
pub struct DamagedRange {
    pub segment: u32,
    pub offset: u32,
    pub len: u32,
    /// The torn tail left by a crash (expected), or damage (not expected).
    pub torn_tail: bool,
    /// Damage that nothing needs: no referenced record lies in it, and it
    /// is in a compaction segment or a log segment the checkpoint covers
    /// (compaction drops it in time).
    pub unused: bool,
}

/// What `repair` changed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairReport {
    /// (bucket, key, reason) of each object marked damaged.
    pub quarantined: Vec<Quarantined>,
    pub checkpoint_rewritten: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Quarantined {
    pub bucket: String,
    pub key: String,
    pub version_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnreadableObject {
    pub bucket: String,
    pub key: String,
    /// Which version (a key may hold several).
    pub version_id: String,
    #[serde(skip)]
    pub lsn: u64,
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
    /// Accounts, users, keys and policies that no longer fit together.
    pub access_problems: Vec<String>,
    /// Encrypted versions whose every chunk's tag was verified (SSE-S3 and
    /// SSE-KMS, with their master key configured).
    pub encrypted_verified: usize,
    /// Encrypted versions checked without their key: crc, structure and
    /// the hash of the sealed bytes (SSE-C, whose key is never stored, and
    /// any whose master key was not given).
    pub encrypted_structural: usize,
}

impl FsckReport {
    /// A torn tail is what a crash leaves and recovery cuts; anything else
    /// is a problem.
    pub fn clean(&self) -> bool {
        self.damaged_ranges.iter().all(|d| d.torn_tail || d.unused)
            && self.unreadable_objects.is_empty()
            && self.space_differences.is_empty()
            && self.access_problems.is_empty()
            && (self.checkpoint == "none" || self.checkpoint == "agrees")
    }
}

/// `check_with_keys` without master keys: encrypted chunks are checked
/// structurally.
pub fn check(
    device: &dyn BlockDevice,
    progress: &dyn Progress,
) -> Result<FsckReport, RecoveryError> {
    check_with_keys(device, progress, &kms::Keyring::default())
}

/// What a version's chunks are checked with.
enum ChunkCheck {
    Plain,
    Opened(Box<lsm::cipher::DataKey>),
    Structural,
}

/// How `keys` let an encrypted version be checked; an error is a wrapped
/// data key that its configured master key does not open.
fn chunk_check(
    keys: &kms::Keyring,
    wrapped: Option<&lsm::format::ObjectEncryption>,
) -> Result<ChunkCheck, kms::KmsError> {
    let Some(wrapped) = wrapped else {
        return Ok(ChunkCheck::Plain);
    };
    if wrapped.mode == lsm::format::SseMode::Customer || !keys.contains(&wrapped.key_name) {
        return Ok(ChunkCheck::Structural);
    }
    keys.unwrap(wrapped)
        .map(|key| ChunkCheck::Opened(Box::new(key)))
}

pub fn check_with_keys(
    device: &dyn BlockDevice,
    progress: &dyn Progress,
    keys: &kms::Keyring,
) -> Result<FsckReport, RecoveryError> {
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
    progress.start("log", headers.used.len() as u64 * sb.segment_size_bytes);
    replay(
        device,
        sb,
        &mut Catalog::default(),
        None,
        &mut scan,
        progress,
    )?;
    let newest_compaction = headers
        .newest(SegmentKind::Compaction)
        .map(|(segment, _)| *segment);
    let mut copies = ScanReport::default();
    for (segment, header) in &headers.used {
        if header.kind == SegmentKind::Compaction {
            let newest = Some(*segment) == newest_compaction;
            scan_compaction_segment(device, sb, *segment, header, newest, &mut copies)?;
        }
    }
    scan.records_applied += copies.records_applied;
    scan.bytes_scanned += copies.bytes_scanned;
    for damage in copies
        .damage
        .into_iter()
        .chain(recovered.scan.damage.clone())
    {
        if !scan.damage.contains(&damage) {
            scan.damage.push(damage);
        }
    }

    let index = &recovered.catalog.index;
    let mut unreadable = Vec::new();
    let mut chunks_checked = 0;
    progress.start(
        "chunks",
        index
            .all_versions()
            .flat_map(|(_, _, entry)| &entry.chunks)
            .map(|chunk| u64::from(chunk.location.len))
            .fold(0, u64::saturating_add),
    );
    let (mut encrypted_verified, mut encrypted_structural) = (0, 0);
    for (bucket, key, entry) in index.all_versions() {
        let unreadable_at = |chunk: Option<&lsm::ChunkRef>, reason: String| UnreadableObject {
            bucket: bucket.to_string(),
            key: key.to_string(),
            version_id: entry.version_id(),
            lsn: entry.lsn,
            segment: chunk.map_or(0, |c| c.location.segment),
            offset: chunk.map_or(0, |c| c.location.offset),
            reason,
        };
        let how = match chunk_check(keys, entry.meta.encryption()) {
            Ok(how) => how,
            Err(e) => {
                unreadable.push(unreadable_at(entry.chunks.first(), e.to_string()));
                continue;
            }
        };
        match how {
            ChunkCheck::Plain => {}
            ChunkCheck::Opened(_) => encrypted_verified += 1,
            ChunkCheck::Structural => encrypted_structural += 1,
        }
        for chunk in &entry.chunks {
            chunks_checked += 1;
            progress.advance(u64::from(chunk.location.len));
            let checked = match &how {
                ChunkCheck::Plain => lsm::reader::read_chunk(device, sb, chunk, None).map(drop),
                ChunkCheck::Opened(data_key) => {
                    lsm::reader::read_chunk(device, sb, chunk, Some(data_key)).map(drop)
                }
                ChunkCheck::Structural => lsm::reader::check_sealed_chunk(device, sb, chunk),
            };
            if let Err(e) = checked {
                unreadable.push(unreadable_at(Some(chunk), e.to_string()));
                break;
            }
        }
    }

    let checkpoint = match (&recovered.checkpoint_problem, sb.checkpoint) {
        (Some(problem), _) if recovered.checkpoint_tail.is_some() => {
            format!("the newest is unusable, the previous one was used: {problem}")
        }
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
                unused: unused(&recovered, &headers, d),
            })
            .collect(),
        objects_checked: index.object_count(),
        chunks_checked,
        unreadable_objects: unreadable,
        checkpoint,
        space_differences,
        access_problems: crate::access_check::access_problems(index),
        encrypted_verified,
        encrypted_structural,
    })
}

/// Whether nothing needs the damaged range: no referenced record lies in
/// it (a damaged segment header: none in the whole segment, which is never
/// reused), and replay never reads it: a compaction segment, or a log
/// segment covered by the checkpoint.
fn unused(recovered: &crate::Recovered, headers: &SegmentHeaders, d: &Damage) -> bool {
    let live = recovered.catalog.space.live_offsets(d.segment);
    if headers.damaged.contains(&d.segment) {
        return live.is_empty();
    }
    let end = d.offset as u64 + d.len as u64;
    let referenced = live.iter().any(|&o| o >= d.offset && (o as u64) < end);
    let replayed = headers
        .used
        .iter()
        .any(|(segment, h)| *segment == d.segment && replayed(h, recovered.checkpoint_tail));
    !replayed && !referenced
}

/// `fsck --repair`: marks every unreadable version quarantined (it keeps
/// its name, reads fail with the reason, its damaged chunks are no longer
/// referenced; a locked version too, which is never removed) and writes a
/// fresh checkpoint, which covers the damaged records so that nothing
/// needs them again.
pub async fn repair(
    store: &lsm::Store,
    report: &FsckReport,
) -> Result<RepairReport, RecoveryError> {
    let mut out = RepairReport::default();
    for object in &report.unreadable_objects {
        let reason = format!(
            "segment {}, offset {}: {}",
            object.segment, object.offset, object.reason
        );
        store
            .quarantine(&object.bucket, &object.key, object.lsn, &reason)
            .await?;
        out.quarantined.push(Quarantined {
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            version_id: object.version_id.clone(),
            reason,
        });
    }
    store.checkpoint().await?;
    out.checkpoint_rewritten = true;
    Ok(out)
}
