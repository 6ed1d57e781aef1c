//! recovery owns rebuilding the store from the device: superblock, newest
//! checkpoint, replay of the segments written after it, torn-tail cut, and
//! which segments are free; and fsck. It decides what the device says; the store (lsm)
//! decides what a record means.

mod access_check;
pub mod checkpoint;
mod error;
pub mod fsck;
mod progress;
pub mod scan;

use std::sync::Arc;
use std::time::Instant;

use blockdev::BlockDevice;
use lsm::format::Superblock;
use lsm::{Catalog, LogPosition, Store, StoreConfig, WriterStart};

pub use checkpoint::load_checkpoint;
pub use error::RecoveryError;
pub use progress::Progress;
pub use scan::{Damage, ScanReport};

/// What recovery found, for the log and for metrics.
#[derive(Debug, Clone)]
pub struct RecoveryReport {
    pub checkpoint_used: bool,
    /// Why a checkpoint named by the superblock was not used.
    pub checkpoint_problem: Option<String>,
    pub objects: usize,
    pub logical_bytes: u64,
    pub scan: ScanReport,
    pub seconds: f64,
}

impl RecoveryReport {
    pub fn scan_mb_per_s(&self) -> f64 {
        self.scan.bytes_scanned as f64 / 1e6 / self.seconds.max(1e-9)
    }

    pub fn torn_tail_records(&self) -> usize {
        self.scan.damage.iter().filter(|d| d.torn_tail).count()
    }
}

#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    pub store: StoreConfig,
    /// Replay the whole log instead (tests; exact only while compaction
    /// has released nothing).
    pub ignore_checkpoint: bool,
}

/// The state a device holds, rebuilt but not yet started.
pub struct Recovered {
    pub superblock: Superblock,
    pub catalog: Catalog,
    pub start: WriterStart,
    /// The loaded checkpoint's tail: segments before it are covered.
    pub checkpoint_tail: Option<LogPosition>,
    /// Why a checkpoint named by the superblock was not used.
    pub checkpoint_problem: Option<String>,
    pub scan: ScanReport,
}

/// Superblock, newest usable checkpoint (the previous one when the newest is
/// damaged), replay of what follows it. Without a usable checkpoint the
/// whole log is replayed, which is exact only while compaction has released
/// nothing; the problem is reported.
pub fn rebuild(
    device: &dyn BlockDevice,
    ignore_checkpoint: bool,
) -> Result<Recovered, RecoveryError> {
    let sb = lsm::read_superblock(device)?;
    let mut checkpoint_problem: Option<String> = None;
    // The newest checkpoint, then the previous one (compaction keeps both
    // valid), then the whole log.
    let previous = lsm::superblock::previous_superblock(device, &sb);
    let slots = if ignore_checkpoint {
        Vec::new()
    } else {
        std::iter::once(sb.clone()).chain(previous).collect()
    };
    for slot in slots {
        let index = match load_checkpoint(device, &slot) {
            Ok(Some(index)) => index,
            Ok(None) => break,
            Err(e) => {
                tracing::error!(error = %e, generation = slot.generation, "checkpoint unusable");
                note_problem(&mut checkpoint_problem, e.to_string());
                continue;
            }
        };
        let tail = index.tail;
        let mut catalog = Catalog::new(index);
        let mut scan = ScanReport::default();
        match scan::replay(device, &sb, &mut catalog, tail, &mut scan, &()) {
            Ok(start) => {
                return Ok(Recovered {
                    superblock: sb,
                    catalog,
                    start,
                    checkpoint_tail: tail,
                    checkpoint_problem,
                    scan,
                })
            }
            Err(e @ RecoveryError::CheckpointMismatch(_)) => {
                tracing::error!(error = %e, "checkpoint does not match the log");
                note_problem(&mut checkpoint_problem, e.to_string());
            }
            Err(e) => return Err(e),
        }
    }
    if checkpoint_problem.is_some() {
        tracing::error!("no usable checkpoint; replaying the whole log");
    }
    let mut scan = ScanReport::default();
    let mut catalog = Catalog::default();
    let start = scan::replay(device, &sb, &mut catalog, None, &mut scan, &())?;
    Ok(Recovered {
        superblock: sb,
        catalog,
        start,
        checkpoint_tail: None,
        checkpoint_problem,
        scan,
    })
}

fn note_problem(problems: &mut Option<String>, problem: String) {
    *problems = Some(match problems.take() {
        Some(earlier) => format!("{earlier}; {problem}"),
        None => problem,
    });
}

/// Rebuilds the index from the device and starts the store on it.
pub fn open(
    device: Arc<dyn BlockDevice>,
    options: OpenOptions,
) -> Result<(Store, RecoveryReport), RecoveryError> {
    let started = Instant::now();
    let recovered = rebuild(device.as_ref(), options.ignore_checkpoint)?;
    let objects = recovered.catalog.index.object_count();
    let logical_bytes = recovered.catalog.index.logical_bytes();
    let report = RecoveryReport {
        checkpoint_used: recovered.checkpoint_tail.is_some(),
        checkpoint_problem: recovered.checkpoint_problem,
        objects,
        logical_bytes,
        scan: recovered.scan,
        seconds: started.elapsed().as_secs_f64(),
    };
    let store = Store::start(
        device,
        recovered.superblock,
        recovered.catalog,
        recovered.start,
        recovered.checkpoint_tail,
        options.store,
    );
    tracing::info!(
        objects = report.objects,
        logical_bytes = report.logical_bytes,
        segments_scanned = report.scan.segments_scanned,
        records_applied = report.scan.records_applied,
        records_cut = report.torn_tail_records(),
        damaged_ranges = report.scan.damage.len(),
        checkpoint = report.checkpoint_used,
        seconds = report.seconds,
        scan_mb_per_s = report.scan_mb_per_s(),
        "recovery finished"
    );
    Ok((store, report))
}
