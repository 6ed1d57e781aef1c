//! `strata inspect DEVICE [--object BUCKET/KEY]`: what is on a device (no
//! server may hold it): superblock, segments in log order with their live
//! share, objects, chunks, compression and dedup ratios, how much was
//! written after the checkpoint; or one object's records.

use std::collections::BTreeMap;
use std::path::Path;

pub fn run(device: &Path, object: Option<&str>) -> Result<(), String> {
    let dev = blockdev::open_device(device, &blockdev::OpenOptions::default())
        .map_err(|e| e.to_string())?;
    let recovered = recovery::rebuild(dev.as_ref(), false).map_err(|e| e.to_string())?;
    let sb = &recovered.superblock;
    if let Some(name) = object {
        return dump_object(dev.as_ref(), &recovered, name);
    }
    let headers =
        recovery::scan::read_segment_headers(dev.as_ref(), sb).map_err(|e| e.to_string())?;
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
    let space = &recovered.catalog.space;
    let usable = sb.segment_size_bytes as f64;
    println!(
        "segments: {} in use, {} free, {} with a damaged header {:?}",
        space.segments().len(),
        recovered.start.free_segments.len(),
        headers.damaged.len(),
        headers.damaged
    );
    let mut by_sequence: Vec<_> = space.segments().iter().collect();
    by_sequence.sort_by_key(|(_, s)| s.sequence);
    for (segment, s) in by_sequence {
        let state = match recovered.checkpoint_tail {
            _ if s.kind == lsm::format::SegmentKind::Compaction => "compaction copies (cold data)",
            Some(t) if s.sequence < t.sequence => "sealed, covered by the checkpoint",
            _ if recovered.start.head.is_some_and(|h| h.segment == *segment) => "open (log head)",
            _ => "sealed, replayed at start",
        };
        println!(
            "  segment {segment:>6}  sequence {:>8}  live {:>5.1}%  {:>6} live records  {state}",
            s.sequence,
            100.0 * s.live_bytes as f64 / usable,
            s.live.len(),
        );
    }
    let index = &recovered.catalog.index;
    let references: usize = index.all_chunk_refs().count();
    let mut unique: BTreeMap<lsm::Location, u32> = BTreeMap::new();
    for chunk in index.all_chunk_refs() {
        unique.insert(chunk.location, chunk.raw_len);
    }
    // Sizes come from the device, which may be damaged: saturate.
    let referenced_raw = index
        .all_chunk_refs()
        .map(|c| u64::from(c.raw_len))
        .fold(0, u64::saturating_add);
    let unique_raw = unique
        .values()
        .map(|&l| u64::from(l))
        .fold(0, u64::saturating_add);
    let stored = space
        .segments()
        .values()
        .map(|s| s.live_bytes)
        .fold(0, u64::saturating_add);
    println!(
        "objects: {} in {} buckets, {} logical bytes; {} chunk references to {} stored chunks",
        index.object_count(),
        index.buckets().len(),
        index.logical_bytes(),
        references,
        unique.len()
    );
    println!(
        "dedup ratio {:.2} (bytes referenced / bytes of distinct chunks), compression ratio {:.2} (distinct chunk bytes / bytes stored)",
        referenced_raw as f64 / unique_raw.max(1) as f64,
        unique_raw as f64 / stored.max(1) as f64
    );
    println!(
        "written after the checkpoint: {} records, {} bytes (replayed at start)",
        recovered.scan.records_applied, recovered.scan.bytes_scanned
    );
    if let Some(allocated) = dev.allocated_bytes() {
        println!("allocated on the host file system: {allocated} bytes");
    }
    Ok(())
}

/// One object's metadata and the header of every record holding its data.
fn dump_object(
    dev: &dyn blockdev::BlockDevice,
    recovered: &recovery::Recovered,
    name: &str,
) -> Result<(), String> {
    let (bucket, key) = name
        .split_once('/')
        .ok_or_else(|| format!("--object wants BUCKET/KEY, got {name}"))?;
    let entry = recovered
        .catalog
        .index
        .object(bucket, key)
        .map_err(|e| format!("{name}: {e}"))?;
    let chunks: Vec<serde_json::Value> = entry
        .chunks
        .iter()
        .map(|c| {
            let record = match lsm::reader::read_record(dev, &recovered.superblock, c.location) {
                Ok((header, _)) => serde_json::json!({
                    "kind": format!("{:?}", header.kind),
                    "flags": header.flags,
                    "lsn": header.lsn,
                }),
                Err(e) => serde_json::json!({ "error": e.to_string() }),
            };
            serde_json::json!({
                "segment": c.location.segment,
                "offset": c.location.offset,
                "len": c.location.len,
                "device_offset": recovered.superblock.segment_offset(c.location.segment) + c.location.offset as u64,
                "raw_len": c.raw_len,
                "hash": hex_string(&c.hash),
                "record": record,
            })
        })
        .collect();
    let out = serde_json::json!({
        "bucket": bucket,
        "key": key,
        "size": entry.meta.size,
        "etag": entry.meta.etag,
        "lsn": entry.lsn,
        "quarantined": entry.meta.quarantined,
        "chunks": chunks,
    });
    println!("{out:#}");
    Ok(())
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
