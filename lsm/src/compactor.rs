//! Compaction: give back the space of overwritten and deleted data.
//!
//! A round: (1) a checkpoint, so every sealed segment is covered and replay
//! never needs its records again; (2) victims picked by cost-benefit among
//! covered segments: free space x age / cost of copying; (3) their
//! referenced records (chunks, small objects' inline data) copied as chunk
//! records to the compaction head, apart from new writes; (4) the index's references swapped to the
//! copies with a compare-and-set (`Index::relocate`): a segment whose
//! references changed meanwhile stays where it is; (5) two checkpoints,
//! which make the new places durable in both superblock slots (recovery
//! falls back to the older one when the newest is damaged); (6) the victims
//! released: space discarded, header zeroed, segment back on the free list.
//!
//! Only data is copied. Manifests, tombstones and bucket records never
//! are: after (5) recovery starts from the checkpoint and never reads a
//! covered segment, so a tombstone has nothing older left to hide and an
//! old manifest is never replayed (invariant 5). A crash anywhere before (5)
//! leaves the old checkpoint and intact victims; after it, recovery treats
//! covered segments with no referenced record as free.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use blockdev::{align_down, align_up, AlignedBuf};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::{
    decode_chunk_payload, Location, Record, RecordHeader, RecordKind, SegmentKind,
    RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES,
};
use crate::index::Referencing;
use crate::store::Store;
use crate::writer::{PendingRecord, PinGuard};

/// How much a round may do.
#[derive(Debug, Clone)]
pub struct CompactionPolicy {
    /// Segments fuller than this (live bytes / segment bytes) are left alone.
    pub max_live_ratio: f64,
    pub max_victims_per_round: usize,
    /// Copy budget, so foreground writes keep the device; `None` is unlimited.
    pub rate_bytes_per_s: Option<u64>,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            max_live_ratio: 0.9,
            max_victims_per_round: 8,
            rate_bytes_per_s: Some(128 << 20),
        }
    }
}

/// When the background compactor starts a round.
#[derive(Debug, Clone)]
pub struct CompactionTriggers {
    /// Start when fewer than this share of segments is free...
    pub min_free_ratio: f64,
    /// ...or when dead bytes exceed this share of the used segments' bytes.
    pub max_dead_ratio: f64,
    pub check_every: Duration,
}

impl Default for CompactionTriggers {
    fn default() -> Self {
        CompactionTriggers {
            min_free_ratio: 0.25,
            max_dead_ratio: 0.15,
            check_every: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RoundReport {
    pub victims: Vec<u32>,
    /// Victims released; the rest kept their place (references changed).
    pub freed: Vec<u32>,
    pub records_copied: u64,
    pub bytes_copied: u64,
    pub seconds: f64,
}

/// Space on the device as the space map sees it.
#[derive(Debug, Clone, Serialize)]
pub struct SpaceReport {
    pub segment_size_bytes: u64,
    pub segments_total: u32,
    pub segments_used: usize,
    pub segments_free: usize,
    /// Bytes of referenced records (stored size: after compression, once
    /// per deduplicated chunk).
    pub live_bytes: u64,
    /// Used segments x segment size.
    pub used_bytes: u64,
    /// used_bytes / live_bytes.
    pub space_amplification: f64,
    pub compaction_paused: bool,
}

impl Store {
    pub fn space_report(&self) -> SpaceReport {
        let sb = &self.geometry();
        let (used, live) = {
            let catalog = self.catalog().read();
            let segments = catalog.space.segments();
            (
                segments.len(),
                segments.values().map(|s| s.live_bytes).sum::<u64>(),
            )
        };
        let used_bytes = used as u64 * sb.segment_size_bytes;
        SpaceReport {
            segment_size_bytes: sb.segment_size_bytes,
            segments_total: sb.segment_count,
            segments_used: used,
            segments_free: self.stats().segments_free,
            live_bytes: live,
            used_bytes,
            space_amplification: used_bytes as f64 / live.max(1) as f64,
            compaction_paused: self.compaction_paused(),
        }
    }

    pub fn pause_compaction(&self, paused: bool) {
        self.compaction_flag().store(paused, Ordering::SeqCst);
    }

    pub fn compaction_paused(&self) -> bool {
        self.compaction_flag().load(Ordering::SeqCst)
    }

    /// When the triggers call for a round, the bytes it should win back:
    /// enough to bring dead bytes to half their trigger and free segments
    /// up to theirs. A round that takes no more than that leaves young
    /// segments time to die whole instead of copying what is about to be
    /// overwritten.
    pub fn compaction_goal(&self, triggers: &CompactionTriggers) -> Option<u64> {
        let report = self.space_report();
        let segment = report.segment_size_bytes;
        let total = report.segments_total as u64 * segment;
        let free = report.segments_free as u64 * segment;
        let dead = report.used_bytes.saturating_sub(report.live_bytes);
        let dead_ratio = dead as f64 / report.used_bytes.max(1) as f64;
        let short_of_free = triggers.min_free_ratio * total as f64 - free as f64;
        // Three segments may be open at once (log head, compaction head,
        // one just filled): partly empty by nature, not worth a round.
        let slack = 3 * segment;
        let due = short_of_free > 0.0 || (dead_ratio > triggers.max_dead_ratio && dead > slack);
        if !due {
            return None;
        }
        let excess_dead = dead as f64 - triggers.max_dead_ratio / 2.0 * report.used_bytes as f64;
        Some(excess_dead.max(short_of_free).max(1.0) as u64)
    }

    /// One compaction round (see the module comment), as many victims as
    /// the policy allows. Rounds run one at a time.
    pub async fn compact_round(&self, policy: &CompactionPolicy) -> Result<RoundReport> {
        self.compact_round_reclaiming(policy, u64::MAX).await
    }

    /// A round that stops picking victims once they would win back `goal`
    /// bytes (see `compaction_goal`).
    pub async fn compact_round_reclaiming(
        &self,
        policy: &CompactionPolicy,
        goal: u64,
    ) -> Result<RoundReport> {
        let _one_round = self.compaction_lock().lock().await;
        let started = Instant::now();
        let mut report = RoundReport::default();
        let covered = self.cover().await?;
        let victims = self.pick_victims(covered, policy, goal);
        if victims.is_empty() {
            return Ok(report);
        }
        report.victims = victims.clone();
        let mut moved = HashMap::new();
        let mut copies = Vec::new();
        let mut sound = BTreeSet::new();
        for &victim in &victims {
            match self
                .copy_live(
                    victim,
                    policy,
                    &mut moved,
                    &mut copies,
                    &mut report,
                    started,
                )
                .await
            {
                Ok(()) => {
                    sound.insert(victim);
                }
                Err(Error::Corruption { location, reason }) => {
                    tracing::error!(
                        segment = location.segment,
                        offset = location.offset,
                        %reason,
                        "damaged live record; segment left in place"
                    );
                    moved.retain(|from: &Location, _| from.segment != victim);
                }
                Err(e) => return Err(e),
            }
        }
        // Found a batch of keys at a time (`visit_keys`). A reference made
        // meanwhile is not found, and `relocate` then leaves its segment in
        // place: it moves one only if the references found are all it has.
        let mut found = Referencing::default();
        self.visit_keys(None, |bucket, key, versions| {
            found.add(bucket, key, versions, &sound)
        })?;
        found.parts = self.catalog().read().index.parts_referencing(&sound);
        let relocated = {
            let mut catalog = self.catalog().write();
            let catalog = &mut *catalog;
            catalog
                .index
                .relocate(&found, &moved, &sound, &mut catalog.space)
        };
        drop(copies);
        if relocated.is_empty() {
            report.seconds = started.elapsed().as_secs_f64();
            return Ok(report);
        }
        // The swap is in memory only until a checkpoint holds it. Two, in
        // fact: the superblock keeps the previous checkpoint as a fallback
        // for a damaged newest one, and it must not name a released segment
        // either.
        self.checkpoint().await?;
        self.checkpoint().await?;
        for &segment in &relocated {
            self.release_segment(segment)?;
        }
        self.writer().release(relocated.iter().copied());
        report.freed = relocated.into_iter().collect();
        report.seconds = started.elapsed().as_secs_f64();
        tracing::info!(
            victims = report.victims.len(),
            freed = report.freed.len(),
            records_copied = report.records_copied,
            bytes_copied = report.bytes_copied,
            seconds = report.seconds,
            "compaction round"
        );
        Ok(report)
    }

    /// Rounds until `target` space amplification is reached or a round
    /// gains less than a segment (offline compaction; tests).
    pub async fn compact_until(
        &self,
        policy: &CompactionPolicy,
        target: f64,
        mut on_round: impl FnMut(&RoundReport),
    ) -> Result<Vec<RoundReport>> {
        let segment = self.geometry().segment_size_bytes;
        let mut rounds = Vec::new();
        while self.space_report().space_amplification > target {
            let round = self.compact_round(policy).await?;
            let gained = (round.freed.len() as u64 * segment).saturating_sub(round.bytes_copied);
            on_round(&round);
            rounds.push(round);
            if gained < segment {
                break;
            }
        }
        Ok(rounds)
    }

    /// Runs rounds whenever the triggers say so, until the store shuts down.
    pub async fn compact_in_background(
        &self,
        policy: CompactionPolicy,
        triggers: CompactionTriggers,
    ) {
        loop {
            tokio::time::sleep(triggers.check_every).await;
            if self.compaction_paused() {
                continue;
            }
            let Some(goal) = self.compaction_goal(&triggers) else {
                continue;
            };
            match self.compact_round_reclaiming(&policy, goal).await {
                Ok(_) => {}
                Err(Error::ShuttingDown) => return,
                Err(e) => tracing::warn!(error = %e, "compaction round failed"),
            }
        }
    }

    /// Makes sure a committed checkpoint covers everything written so far
    /// and returns the first sequence it does not cover.
    async fn cover(&self) -> Result<u64> {
        let written = self.applied_lsn();
        let newest = *self.checkpoint_lock().lock().await;
        if written > newest.applied_lsn || newest.covered_sequence == 0 {
            return Ok(self.checkpoint().await?.covered_sequence);
        }
        Ok(newest.covered_sequence)
    }

    /// Log segments the checkpoint covers, and sealed compaction segments
    /// (never replayed, so any of them qualifies), by cost-benefit.
    fn pick_victims(&self, covered: u64, policy: &CompactionPolicy, goal: u64) -> Vec<u32> {
        let usable = (self.geometry().segment_size_bytes - SEGMENT_HEADER_BYTES as u64) as f64;
        // The copies must fit in the free segments, one kept back for the
        // checkpoint that follows them.
        let writer = self.writer().stats();
        let mut budget = writer.free_segments.saturating_sub(1) as f64 * usable;
        let catalog = self.catalog().read();
        let newest = catalog
            .space
            .segments()
            .values()
            .map(|s| s.sequence)
            .max()
            .unwrap_or(0);
        let mut scored: Vec<(f64, u32)> = catalog
            .space
            .segments()
            .iter()
            .filter(|(segment, space)| {
                let settled = match space.kind {
                    SegmentKind::Log => space.sequence < covered,
                    SegmentKind::Compaction => writer.compaction_head != Some(**segment),
                };
                settled && !catalog.space.is_pinned(**segment)
            })
            .filter_map(|(segment, space)| {
                let live = space.live_bytes as f64 / usable;
                if live > policy.max_live_ratio {
                    return None;
                }
                let age = (newest - space.sequence + 1) as f64;
                Some(((1.0 - live) * age / (1.0 + live), *segment))
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut victims = Vec::new();
        let mut reclaimed = 0.0;
        for (_, segment) in scored {
            let live = catalog.space.segment(segment).map_or(0, |s| s.live_bytes) as f64;
            if victims.len() == policy.max_victims_per_round
                || live > budget
                || reclaimed >= goal as f64
            {
                break;
            }
            budget -= live;
            reclaimed += usable - live;
            victims.push(segment);
        }
        victims
    }

    /// Copies a victim's referenced records to the head, in batches.
    async fn copy_live(
        &self,
        victim: u32,
        policy: &CompactionPolicy,
        moved: &mut HashMap<Location, Location>,
        copies: &mut Vec<PinGuard>,
        report: &mut RoundReport,
        started: Instant,
    ) -> Result<()> {
        // Foreground commits share the writer with these batches: a small
        // batch keeps the wait of a commit queued behind one short.
        const BATCH_BYTES: usize = 1 << 20;
        let offsets = self.catalog().read().space.live_offsets(victim);
        let mut reader = SegmentReader::new(self.clone(), victim);
        let mut batch: Vec<(Location, PendingRecord)> = Vec::new();
        let mut batch_bytes = 0;
        for offset in offsets {
            let (location, record) = reader.copy_of(offset).await?;
            let len = record.payload.len() + RECORD_HEADER_BYTES;
            if batch_bytes + len > BATCH_BYTES && !batch.is_empty() {
                self.append_copies(std::mem::take(&mut batch), moved, copies, report)
                    .await?;
                batch_bytes = 0;
                throttle(policy, report.bytes_copied, started).await;
            }
            batch_bytes += len;
            batch.push((location, record));
        }
        self.append_copies(batch, moved, copies, report).await
    }

    async fn append_copies(
        &self,
        batch: Vec<(Location, PendingRecord)>,
        moved: &mut HashMap<Location, Location>,
        copies: &mut Vec<PinGuard>,
        report: &mut RoundReport,
    ) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let (from, records): (Vec<Location>, Vec<PendingRecord>) = batch.into_iter().unzip();
        let committed = self.append(records).await?;
        committed.outcome?;
        for (old, new) in from.into_iter().zip(committed.locations) {
            report.records_copied += 1;
            report.bytes_copied += new.len as u64;
            moved.insert(old, new);
        }
        copies.push(committed.pins);
        Ok(())
    }

    /// Gives the space back to the device and makes sure the header reads
    /// as zeros (so the segment is free to recovery even where discard
    /// leaves the old bytes).
    fn release_segment(&self, segment: u32) -> Result<()> {
        let sb = self.geometry();
        let start = sb.segment_offset(segment);
        if let Err(e) = self.device().discard(start, sb.segment_size_bytes) {
            // Space not given back is lost to the footprint only.
            tracing::warn!(segment, error = %e, "discard failed");
        }
        crate::superblock::zero_header(self.device().as_ref(), start)?;
        self.catalog().write().space.release_segment(segment);
        Ok(())
    }
}

/// Keeps the copy rate under the budget.
async fn throttle(policy: &CompactionPolicy, bytes_copied: u64, started: Instant) {
    if let Some(rate) = policy.rate_bytes_per_s.filter(|r| *r > 0) {
        let due = Duration::from_secs_f64(bytes_copied as f64 / rate as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Reads a victim through a 1 MiB window on the blocking pool (a larger
/// one makes foreground reads queue behind it).
struct SegmentReader {
    store: Store,
    segment: u32,
    window_start: u64,
    window: AlignedBuf,
}

const WINDOW_BYTES: u64 = 1 << 20;

impl SegmentReader {
    fn new(store: Store, segment: u32) -> Self {
        SegmentReader {
            store,
            segment,
            window_start: 0,
            window: AlignedBuf::zeroed(0),
        }
    }

    async fn bytes(&mut self, offset: u64, len: u64) -> Result<&[u8]> {
        let end = self.window_start + self.window.len() as u64;
        if offset < self.window_start || offset + len > end {
            let sb = self.store.geometry();
            let start = align_down(offset);
            let size = align_up(offset + len - start)
                .max(WINDOW_BYTES)
                .min(sb.segment_size_bytes - start);
            let device = self.store.device().clone();
            let at = sb.segment_offset(self.segment) + start;
            self.window = tokio::task::spawn_blocking(move || {
                device.read_at(AlignedBuf::zeroed(size as usize), at)
            })
            .await
            .map_err(|e| Error::Failed(format!("read task failed: {e}")))?
            .map_err(Error::from_device)?;
            self.window_start = start;
        }
        let at = (offset - self.window_start) as usize;
        self.window
            .get(at..at + len as usize)
            .ok_or_else(|| Error::Failed("segment read came back short".into()))
    }

    /// The record at `offset`, checked, as the chunk record that replaces it.
    async fn copy_of(&mut self, offset: u32) -> Result<(Location, PendingRecord)> {
        let segment_size = self.store.geometry().segment_size_bytes;
        let mut location = Location {
            segment: self.segment,
            offset,
            len: 0,
        };
        let corrupt = |location: Location, reason: &str| Error::Corruption {
            location,
            reason: reason.to_string(),
        };
        if offset as u64 + RECORD_HEADER_BYTES as u64 > segment_size {
            return Err(corrupt(location, "live offset outside the segment"));
        }
        let header = RecordHeader::peek(
            self.bytes(offset as u64, RECORD_HEADER_BYTES as u64)
                .await?,
        )
        .ok_or_else(|| corrupt(location, "bad record header"))?;
        if offset as u64 + header.total_len() as u64 > segment_size {
            return Err(corrupt(location, "record runs past the segment"));
        }
        location.len = header.total_len() as u32;
        let device_uuid = self.store.geometry().device_uuid;
        let whole = self.bytes(offset as u64, location.len as u64).await?;
        if !RecordHeader::verify(&device_uuid, whole) {
            return Err(corrupt(location, "crc mismatch"));
        }
        let payload = &whole[RECORD_HEADER_BYTES..];
        let (flags, stored) = match header.kind {
            RecordKind::Chunk => (header.flags, payload.to_vec()),
            kind if kind.carries_inline_data() => match Record::decode(header.kind, payload)? {
                Record::Object(put) if !put.inline.is_empty() => (put.inline_flags, put.inline),
                _ => return Err(corrupt(location, "object record without inline data")),
            },
            other => return Err(corrupt(location, &format!("{other:?} is not data"))),
        };
        let chunk = decode_chunk_payload(&stored)
            .ok_or_else(|| corrupt(location, "chunk payload too short"))?;
        let record = Record::Chunk {
            hash: chunk.hash,
            raw_len: chunk.raw_len,
        };
        Ok((
            location,
            PendingRecord {
                flags,
                payload: stored,
                record,
                relocation: true,
            },
        ))
    }
}
