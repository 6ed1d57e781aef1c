//! `strata compact DEVICE [--target-space-amp X]`: offline compaction of a
//! device no server holds, until the target is reached or no segment is
//! worth cleaning; before/after report. Each round is crash-safe (see
//! lsm's compactor), so Ctrl-C or kill -9 at any point loses nothing.

use std::path::Path;

use recovery::Progress;

use crate::progress::Reporter;

pub fn run(device: &Path, target_space_amp: f64, json: bool) -> Result<(), String> {
    let dev = blockdev::open_device(device, &blockdev::OpenOptions::default())
        .map_err(|e| e.to_string())?;
    let (store, _) = recovery::open(dev.clone(), recovery::OpenOptions::default())
        .map_err(|e| format!("cannot open {}: {e}", device.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let before = store.space_report();
    let allocated_before = dev.allocated_bytes();
    let policy = lsm::CompactionPolicy {
        rate_bytes_per_s: None,
        ..Default::default()
    };
    // Progress is space given back, against what the target asks for.
    let progress = Reporter::new("compact");
    let target_used = (before.live_bytes as f64 * target_space_amp) as u64;
    progress.start("reclaim", before.used_bytes.saturating_sub(target_used));
    let rounds = runtime.block_on(async {
        let rounds = store
            .compact_until(&policy, target_space_amp, |round| {
                progress.advance(round.freed.len() as u64 * before.segment_size_bytes);
            })
            .await?;
        // Recovery starts from the state of the last round.
        store.checkpoint().await?;
        Ok::<_, lsm::Error>(rounds)
    });
    progress.finish();
    let after = store.space_report();
    store.shutdown();
    drop(store);
    let rounds = rounds.map_err(|e| format!("compaction failed: {e}"))?;
    let allocated_after = dev.allocated_bytes();
    let freed: usize = rounds.iter().map(|r| r.freed.len()).sum();
    let copied: u64 = rounds.iter().map(|r| r.bytes_copied).sum();
    if json {
        let out = serde_json::json!({
            "before": before,
            "after": after,
            "rounds": rounds.len(),
            "segments_freed": freed,
            "bytes_copied": copied,
            "allocated_bytes_before": allocated_before,
            "allocated_bytes_after": allocated_after,
        });
        println!("{out}");
    } else {
        println!(
            "before: {} segments used, {} live bytes, space amplification {:.2}",
            before.segments_used, before.live_bytes, before.space_amplification
        );
        println!(
            "after:  {} segments used, {} live bytes, space amplification {:.2}",
            after.segments_used, after.live_bytes, after.space_amplification
        );
        println!(
            "{} rounds, {freed} segments freed, {copied} bytes copied",
            rounds.len()
        );
        if let (Some(b), Some(a)) = (allocated_before, allocated_after) {
            println!("allocated on the host file system: {b} -> {a} bytes");
        }
    }
    Ok(())
}
