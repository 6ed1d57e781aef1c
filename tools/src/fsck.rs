//! `strata fsck DEVICE [--json]`: read-only check of a device that no server
//! holds. Exit 0 clean, 1 problems found, 2 could not run.

use std::path::Path;
use std::process::ExitCode;

use crate::progress::Reporter;

pub fn run(device: &Path, json: bool, repair: bool, keys: &kms::Keyring) -> ExitCode {
    let options = blockdev::OpenOptions::default();
    let dev = match blockdev::open_device(device, &options) {
        Ok(dev) => dev,
        Err(e) => {
            eprintln!("strata fsck: {e}");
            return ExitCode::from(2);
        }
    };
    let progress = Reporter::new("fsck");
    let checked = recovery::fsck::check_with_keys(dev.as_ref(), &progress, keys);
    progress.finish();
    let mut report = match checked {
        Ok(report) => report,
        Err(e) => {
            eprintln!("strata fsck: cannot check {}: {e}", device.display());
            return ExitCode::from(2);
        }
    };
    let mut repaired = None;
    if repair && !report.clean() {
        match run_repair(dev.clone(), &report, &progress, keys) {
            Ok((changes, after)) => {
                repaired = Some(changes);
                report = after;
            }
            Err(e) => {
                eprintln!("strata fsck: repair of {} failed: {e}", device.display());
                return ExitCode::from(2);
            }
        }
    }
    if json {
        let out = serde_json::json!({ "report": report, "repair": repaired });
        match serde_json::to_string(&out) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("strata fsck: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        println!("device {}", device.display());
        println!(
            "  superblock generation {}, segments: {} used, {} free, {} bytes each",
            report.superblock_generation,
            report.segments_used,
            report.segments_free,
            report.segment_size_bytes
        );
        println!(
            "  log: {} records, {} bytes verified",
            report.records_applied, report.bytes_scanned
        );
        println!(
            "  objects: {} checked, {} chunks read back",
            report.objects_checked, report.chunks_checked
        );
        if report.encrypted_verified + report.encrypted_structural > 0 {
            println!(
                "  encrypted versions: {} with their tags verified (master key given), {} checked structurally (SSE-C, or no key: crc and sealed-bytes hash)",
                report.encrypted_verified, report.encrypted_structural
            );
        }
        if let Some(changes) = &repaired {
            for q in &changes.quarantined {
                println!(
                    "  REPAIRED: quarantined {}/{} version {} ({})",
                    q.bucket, q.key, q.version_id, q.reason
                );
            }
            println!("  REPAIRED: checkpoint rewritten; the report below is after the repair");
        }
        for d in &report.damaged_ranges {
            let what = if d.torn_tail {
                "torn tail (cut at recovery)"
            } else if d.unused {
                "damaged but unused (no object needs it)"
            } else {
                "DAMAGED"
            };
            println!(
                "  {what}: segment {}, offset {}, {} bytes",
                d.segment, d.offset, d.len
            );
        }
        for o in &report.unreadable_objects {
            println!(
                "  UNREADABLE {}/{}: segment {}, offset {}: {}",
                o.bucket, o.key, o.segment, o.offset, o.reason
            );
        }
        println!("  checkpoint: {}", report.checkpoint);
        for difference in &report.space_differences {
            println!("  REFERENCE COUNT {difference}");
        }
        for problem in &report.access_problems {
            println!("  ACCESS {problem}");
        }
        println!(
            "{}",
            if report.clean() {
                "clean"
            } else {
                "PROBLEMS FOUND"
            }
        );
    }
    if report.clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Quarantines what is damaged, rewrites the checkpoint, and checks again.
fn run_repair(
    dev: std::sync::Arc<dyn blockdev::BlockDevice>,
    report: &recovery::fsck::FsckReport,
    progress: &Reporter,
    keys: &kms::Keyring,
) -> Result<(recovery::fsck::RepairReport, recovery::fsck::FsckReport), String> {
    let (store, _) =
        recovery::open(dev.clone(), recovery::OpenOptions::default()).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let changes = runtime
        .block_on(recovery::fsck::repair(&store, report))
        .map_err(|e| e.to_string());
    store.shutdown();
    drop(store);
    let changes = changes?;
    let after = recovery::fsck::check_with_keys(dev.as_ref(), progress, keys);
    progress.finish();
    let after = after.map_err(|e| e.to_string())?;
    Ok((changes, after))
}
