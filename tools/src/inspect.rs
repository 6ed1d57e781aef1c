//! `strata inspect DEVICE`: what is on a device (no server may hold it):
//! superblock, segments in log order, objects and bytes, the checkpoint.

use std::path::Path;

pub fn run(device: &Path) -> Result<(), String> {
    let dev = blockdev::open_device(device, &blockdev::OpenOptions::default())
        .map_err(|e| e.to_string())?;
    let sb = lsm::read_superblock(dev.as_ref()).map_err(|e| e.to_string())?;
    let headers =
        recovery::scan::read_segment_headers(dev.as_ref(), &sb).map_err(|e| e.to_string())?;
    println!("device {} ({})", device.display(), dev.describe());
    println!(
        "superblock: generation {}, {} segments of {} bytes, checkpoint {}",
        sb.generation,
        sb.segment_count,
        sb.segment_size_bytes,
        match sb.checkpoint {
            Some(l) => format!("at segment {}, offset {}", l.segment, l.offset),
            None => "none".into(),
        }
    );
    println!(
        "segments: {} in use, {} free, {} with a damaged header {:?}",
        headers.used.len(),
        headers.free.len(),
        headers.damaged.len(),
        headers.damaged
    );
    for (segment, header) in &headers.used {
        println!(
            "  segment {segment:>6}  sequence {:>8}  first lsn {:>12}",
            header.sequence, header.first_lsn
        );
    }
    let recovered = recovery::rebuild(dev.as_ref(), false).map_err(|e| e.to_string())?;
    let index = &recovered.catalog.index;
    let chunks: usize = index.all_objects().map(|(_, _, o)| o.chunks.len()).sum();
    println!(
        "objects: {} in {} buckets, {} logical bytes, {} chunk references; replayed after the checkpoint: {} records, {} bytes",
        index.object_count(),
        index.buckets().len(),
        index.logical_bytes(),
        chunks,
        recovered.scan.records_applied,
        recovered.scan.bytes_scanned
    );
    if let Some(allocated) = dev.allocated_bytes() {
        println!("allocated on the host file system: {allocated} bytes");
    }
    Ok(())
}
