//! `strata fsck DEVICE [--json]`: read-only check of a device that no server
//! holds. Exit 0 clean, 1 problems found, 2 could not run.

use std::path::Path;
use std::process::ExitCode;

pub fn run(device: &Path, json: bool) -> ExitCode {
    let options = blockdev::OpenOptions::default();
    let dev = match blockdev::open_device(device, &options) {
        Ok(dev) => dev,
        Err(e) => {
            eprintln!("strata fsck: {e}");
            return ExitCode::from(2);
        }
    };
    let report = match recovery::fsck::check(dev.as_ref()) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("strata fsck: cannot check {}: {e}", device.display());
            return ExitCode::from(2);
        }
    };
    if json {
        match serde_json::to_string(&report) {
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
        for d in &report.damaged_ranges {
            let what = if d.torn_tail {
                "torn tail (cut at recovery)"
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
