//! recovery owns rebuilding the store from the device: superblock, newest
//! checkpoint, replay of the segments written after it, torn-tail cut; and
//! writing checkpoints. It decides what the device says; the store (lsm)
//! decides what a record means.

pub mod checkpoint;
mod error;
pub mod fsck;
pub mod scan;

use std::sync::Arc;
use std::time::Instant;

use blockdev::BlockDevice;
use lsm::{Index, Store, StoreConfig};

pub use checkpoint::{load_checkpoint, write_checkpoint, CheckpointReport};
pub use error::RecoveryError;
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
    /// Ignore the checkpoint and replay the whole log (fsck, tests).
    pub ignore_checkpoint: bool,
}

/// Rebuilds the index from the device and starts the store on it.
pub fn open(
    device: Arc<dyn BlockDevice>,
    options: OpenOptions,
) -> Result<(Store, RecoveryReport), RecoveryError> {
    let started = Instant::now();
    let sb = lsm::read_superblock(device.as_ref())?;
    let mut checkpoint_problem = None;
    let loaded = if options.ignore_checkpoint {
        None
    } else {
        match load_checkpoint(device.as_ref(), &sb) {
            Ok(index) => index,
            Err(e) => {
                tracing::warn!(error = %e, "checkpoint unusable; replaying the whole log");
                checkpoint_problem = Some(e.to_string());
                None
            }
        }
    };
    let checkpoint_used = loaded.is_some();
    let mut report = ScanReport::default();
    let (index, start) = match loaded {
        Some(mut index) => {
            let from = index.tail;
            match scan::replay(device.as_ref(), &sb, &mut index, from, &mut report) {
                Ok(start) => (index, start),
                Err(e @ RecoveryError::CheckpointMismatch(_)) => {
                    tracing::warn!(error = %e, "checkpoint does not match the log; replaying the whole log");
                    checkpoint_problem = Some(e.to_string());
                    report = ScanReport::default();
                    let mut index = Index::default();
                    let start = scan::replay(device.as_ref(), &sb, &mut index, None, &mut report)?;
                    (index, start)
                }
                Err(e) => return Err(e),
            }
        }
        None => {
            let mut index = Index::default();
            let start = scan::replay(device.as_ref(), &sb, &mut index, None, &mut report)?;
            (index, start)
        }
    };
    let objects = index.object_count();
    let logical_bytes = index.logical_bytes();
    let store = Store::start(device, sb, index, start, options.store);
    let report = RecoveryReport {
        checkpoint_used: checkpoint_used && checkpoint_problem.is_none(),
        checkpoint_problem,
        objects,
        logical_bytes,
        scan: report,
        seconds: started.elapsed().as_secs_f64(),
    };
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
