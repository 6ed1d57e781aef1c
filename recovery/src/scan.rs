//! Replaying the log: read every segment header, then the log segments
//! written after the starting point in sequence order, verify each record's
//! crc and apply it to the index. Padding at the end of a batch is skipped;
//! damage is stepped over by searching for the next valid record; what
//! follows the last valid record of the newest segment is the torn tail,
//! cut. Compaction segments hold only copies of chunks, which change no
//! state, so they are not replayed (see `SegmentKind::Compaction`).

use std::collections::BTreeSet;
use std::sync::mpsc;

use blockdev::{align_down, align_up, AlignedBuf, BlockDevice, BLOCK_SIZE};
use lsm::format::{
    Record, RecordHeader, SegmentHeader, SegmentKind, Superblock, COUNTER_LIMIT,
    RECORD_HEADER_BYTES, RECORD_MAGIC, SEGMENT_HEADER_BYTES,
};
use lsm::{Catalog, Location, LogPosition, WriterStart};

use crate::error::RecoveryError;
use crate::progress::Progress;

/// How far past a damaged spot we look for the next valid record: a later
/// batch must begin within one batch of the damage.
const RESYNC_WINDOW_BYTES: u64 = (lsm::writer::MAX_UNSYNCED_BYTES + BLOCK_SIZE) as u64;
const READ_WINDOW_BYTES: usize = 8 << 20;

/// A stretch of the log that held no valid record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub segment: u32,
    pub offset: u32,
    pub len: u32,
    /// True when it is the torn tail of the newest segment (expected after
    /// a crash), false when valid records follow it (corruption).
    pub torn_tail: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ScanReport {
    pub segments_scanned: usize,
    pub records_applied: u64,
    /// Records whose operation failed at apply, as it did when first written
    /// (e.g. a delete of a non-empty bucket): normal, not damage.
    pub records_rejected: u64,
    pub bytes_scanned: u64,
    pub damage: Vec<Damage>,
}

/// One valid record found by the scanner.
pub struct ScannedRecord<'a> {
    pub location: Location,
    pub header: RecordHeader,
    pub payload: &'a [u8],
}

/// The segments as their headers describe them.
pub struct SegmentHeaders {
    /// Valid headers for this device, in sequence order.
    pub used: Vec<(u32, SegmentHeader)>,
    /// All-zero headers: formatted or released segments, safe to reuse.
    pub free: BTreeSet<u32>,
    /// Headers that are neither: never reused, since a flipped bit in a
    /// header must not turn a segment full of data into free space.
    pub damaged: Vec<u32>,
}

impl SegmentHeaders {
    /// The most recently opened segment of a kind.
    pub fn newest(&self, kind: SegmentKind) -> Option<&(u32, SegmentHeader)> {
        self.used.iter().rev().find(|(_, h)| h.kind == kind)
    }
}

/// Whether replay from `from` (a checkpoint's tail; `None`: the whole log)
/// reads this segment: log segments from the tail's on, never compaction
/// segments.
pub fn replayed(header: &SegmentHeader, from: Option<LogPosition>) -> bool {
    header.kind == SegmentKind::Log && from.is_none_or(|f| header.sequence >= f.sequence)
}

pub fn read_segment_headers(
    device: &dyn BlockDevice,
    sb: &Superblock,
) -> Result<SegmentHeaders, RecoveryError> {
    let mut headers = SegmentHeaders {
        used: Vec::new(),
        free: BTreeSet::new(),
        damaged: Vec::new(),
    };
    for segment in 0..sb.segment_count {
        let block = device.read_at(AlignedBuf::zeroed(BLOCK_SIZE), sb.segment_offset(segment))?;
        match SegmentHeader::decode(&block, &sb.device_uuid) {
            Some(header) => headers.used.push((segment, header)),
            None if block.iter().all(|&b| b == 0) => {
                headers.free.insert(segment);
            }
            None => {
                tracing::error!(segment, "damaged segment header; the segment is left alone");
                headers.damaged.push(segment);
            }
        }
    }
    headers.used.sort_by_key(|(_, h)| h.sequence);
    Ok(headers)
}

/// Replays the log into `catalog` from `from` (a checkpoint's tail), or
/// from the start. Returns where the writer resumes, with the free
/// segments: those whose header is zero, log segments the checkpoint covers
/// that hold no referenced record (compaction released them, or was cut
/// short between its checkpoint and the release), and compaction segments
/// that hold no referenced record (copies whose round never became durable).
pub fn replay(
    device: &dyn BlockDevice,
    sb: &Superblock,
    catalog: &mut Catalog,
    from: Option<LogPosition>,
    report: &mut ScanReport,
    progress: &dyn Progress,
) -> Result<WriterStart, RecoveryError> {
    let headers = read_segment_headers(device, sb)?;
    let mut free = headers.free.clone();
    let used = &headers.used;
    for &segment in &headers.damaged {
        report.damage.push(Damage {
            segment,
            offset: 0,
            len: SEGMENT_HEADER_BYTES,
            torn_tail: false,
        });
    }
    let mut next_lsn = catalog.index.applied_lsn.saturating_add(1);
    let mut last_lsn = catalog.index.applied_lsn;
    let mut next_sequence = 1;
    let mut head = None;
    if let Some(from) = from {
        let found = used.iter().any(|(seg, h)| {
            *seg == from.segment && h.sequence == from.sequence && h.kind == SegmentKind::Log
        });
        if !found {
            return Err(RecoveryError::CheckpointMismatch(format!(
                "segment {} (sequence {}) named by the checkpoint is not on the device",
                from.segment, from.sequence
            )));
        }
    }
    let newest = headers.newest(SegmentKind::Log).map(|(seg, _)| *seg);
    for (segment, header) in used {
        progress.advance(sb.segment_size_bytes);
        next_sequence = next_sequence.max(header.sequence.saturating_add(1));
        next_lsn = next_lsn.max(header.first_lsn);
        if header.kind == SegmentKind::Compaction {
            continue;
        }
        let start = match from {
            Some(f) if header.sequence < f.sequence => continue,
            Some(f) if header.sequence == f.sequence => f.offset,
            _ => SEGMENT_HEADER_BYTES,
        };
        report.segments_scanned += 1;
        let is_newest = Some(*segment) == newest;
        let mut scanner = SegmentScanner::new(device, sb, *segment, header.first_lsn);
        // A record whose crc holds but whose payload does not decode was
        // written by a different format: damage, reported, never guessed at.
        let mut undecodable = Vec::new();
        let end = scanner.scan(start, &mut last_lsn, is_newest, report, &mut |rec| {
            match Record::decode(rec.header.kind, rec.payload) {
                Ok(record) => catalog.apply(rec.header.lsn, rec.location, &record).is_err(),
                Err(e) => {
                    tracing::error!(segment = rec.location.segment, offset = rec.location.offset, error = %e, "undecodable record");
                    undecodable.push(Damage {
                        segment: rec.location.segment,
                        offset: rec.location.offset,
                        len: rec.location.len,
                        torn_tail: false,
                    });
                    true
                }
            }
        })?;
        report.damage.extend(undecodable);
        report.records_applied += scanner.applied;
        report.records_rejected += scanner.rejected;
        if is_newest {
            head = Some(LogPosition {
                segment: *segment,
                sequence: header.sequence,
                offset: align_up(end as u64) as u32,
            });
            catalog.index.tail = Some(LogPosition {
                segment: *segment,
                sequence: header.sequence,
                offset: end,
            });
        }
    }
    next_lsn = next_lsn.max(last_lsn.saturating_add(1));
    // The newest compaction segment holds the highest lsn of any: a round
    // cut short may have copied past everything the log and the checkpoint
    // know of. Numbering must continue above it, or a stale copy could
    // pass for a record of a segment's next incarnation.
    if let Some((segment, header)) = headers.newest(SegmentKind::Compaction) {
        let mut scratch = ScanReport::default();
        let copied_to = scan_compaction_segment(device, sb, *segment, header, true, &mut scratch)?;
        report.damage.extend(scratch.damage);
        next_lsn = next_lsn.max(copied_to.saturating_add(1));
    }
    // The writer never uses a counter at or above the limit, so one here is
    // damage that passed a crc; the next lsn may equal the limit (the
    // writer then refuses writes, and nothing acknowledged is lost).
    if next_lsn > COUNTER_LIMIT || next_sequence > COUNTER_LIMIT {
        return Err(RecoveryError::CountersExhausted {
            next_lsn,
            next_segment_sequence: next_sequence,
        });
    }
    for (segment, header) in used {
        let referenced = catalog
            .space
            .segment(*segment)
            .is_some_and(|s| s.live_bytes > 0);
        if !replayed(header, from) && !referenced {
            free.insert(*segment);
        } else {
            catalog.space.note_segment(*segment, header);
        }
    }
    Ok(WriterStart {
        head,
        next_lsn,
        next_segment_sequence: next_sequence,
        free_segments: free,
    })
}

/// Walks a compaction segment's records, checking each, and returns the
/// last valid record's lsn (the segment's first lsn less one if it has
/// none). Nothing is applied: copies change no state.
pub fn scan_compaction_segment(
    device: &dyn BlockDevice,
    sb: &Superblock,
    segment: u32,
    header: &SegmentHeader,
    is_newest: bool,
    report: &mut ScanReport,
) -> Result<u64, RecoveryError> {
    let mut last_lsn = header.first_lsn.saturating_sub(1);
    let mut scanner = SegmentScanner::new(device, sb, segment, header.first_lsn);
    scanner.scan(
        SEGMENT_HEADER_BYTES,
        &mut last_lsn,
        is_newest,
        report,
        &mut |_| false,
    )?;
    report.records_applied += scanner.applied;
    report.segments_scanned += 1;
    Ok(last_lsn)
}

/// Reads one segment through a window and walks its records. While
/// `scan` walks one window, a reader thread reads the next, so the device
/// and the CPU work at once (one after the other, a scan ran at the sum of
/// their times).
pub struct SegmentScanner<'d> {
    device: &'d dyn BlockDevice,
    device_uuid: [u8; 16],
    segment: u32,
    segment_base: u64,
    segment_size: u64,
    first_lsn: u64,
    window_start: u64,
    window: Option<AlignedBuf>,
    /// The window after this one, read ahead (only while `scan` runs).
    ahead: Option<ReadAhead>,
    pub applied: u64,
    pub rejected: u64,
}

/// The reader thread's end of the scanner, and the window it was asked
/// for (segment-relative start and length), until the scanner takes it.
struct ReadAhead {
    /// Device offset, and a buffer to read into.
    requests: mpsc::Sender<(u64, AlignedBuf)>,
    /// Each read's device offset, with what it read.
    replies: mpsc::Receiver<(u64, Result<AlignedBuf, blockdev::DeviceError>)>,
    next: Option<NextWindow>,
    /// Windows done with, to read into again: a fresh multi-megabyte
    /// buffer per window cost the reader thread more in page faults than
    /// the read.
    spares: Vec<AlignedBuf>,
}

/// A spare buffer of `len` bytes, or a new one.
fn spare_buffer(spares: &mut Vec<AlignedBuf>, len: usize) -> AlignedBuf {
    match spares.iter().position(|b| b.capacity() >= len) {
        Some(at) => {
            let mut buf = spares.swap_remove(at);
            buf.set_len(len);
            buf
        }
        None => AlignedBuf::zeroed(len),
    }
}

fn keep_spare(spares: &mut Vec<AlignedBuf>, buf: Option<AlignedBuf>) {
    if let Some(buf) = buf {
        if spares.len() < 2 {
            spares.push(buf);
        }
    }
}

enum NextWindow {
    Asked { start: u64 },
    Read { start: u64, buf: AlignedBuf },
}

impl<'d> SegmentScanner<'d> {
    pub fn new(device: &'d dyn BlockDevice, sb: &Superblock, segment: u32, first_lsn: u64) -> Self {
        SegmentScanner {
            device,
            device_uuid: sb.device_uuid,
            segment,
            segment_base: sb.segment_offset(segment),
            segment_size: sb.segment_size_bytes,
            first_lsn,
            window_start: 0,
            window: None,
            ahead: None,
            applied: 0,
            rejected: 0,
        }
    }

    /// Bytes at [offset, offset+len) of the segment, reading as needed.
    fn bytes(&mut self, offset: u64, len: usize) -> Result<&[u8], RecoveryError> {
        let end = offset + len as u64;
        let window_end = self.window_start + self.window.as_ref().map_or(0, |w| w.len() as u64);
        let have = self.window.is_some() && offset >= self.window_start && end <= window_end;
        if !have {
            self.move_window(offset, end, window_end)?;
        }
        let w = self.window.as_ref().map(|w| &w[..]).unwrap_or(&[]);
        let at = (offset - self.window_start) as usize;
        Ok(&w[at..at + len])
    }

    /// Makes the window hold [offset, end): the window read ahead if it
    /// does, the end of this one joined to its start if the range straddles
    /// them, or else a window read now.
    fn move_window(&mut self, offset: u64, end: u64, window_end: u64) -> Result<(), RecoveryError> {
        let start = align_down(offset);
        if let Some(ahead) = &mut self.ahead {
            if let Some(NextWindow::Asked { start: asked }) = ahead.next {
                // A failed read is made again below, where its error is
                // reported.
                ahead.next = match ahead.replies.recv() {
                    Ok((at, Ok(buf))) if at == self.segment_base + asked => {
                        Some(NextWindow::Read { start: asked, buf })
                    }
                    _ => None,
                };
            }
            if let Some(NextWindow::Read { start: next, buf }) = &ahead.next {
                let next_end = next + buf.len() as u64;
                if start >= *next && end <= next_end {
                    if let Some(NextWindow::Read { start: next, buf }) = ahead.next.take() {
                        self.window_start = next;
                        keep_spare(&mut ahead.spares, self.window.replace(buf));
                        self.read_ahead();
                    }
                    return Ok(());
                }
                let joins = self.window.is_some()
                    && start >= self.window_start
                    && window_end == *next
                    && start < *next
                    && end <= next_end;
                if joins {
                    let mut joined =
                        spare_buffer(&mut ahead.spares, (align_up(end) - start) as usize);
                    let from_this = (next - start) as usize;
                    if let Some(window) = &self.window {
                        joined[..from_this]
                            .copy_from_slice(&window[(start - self.window_start) as usize..]);
                    }
                    let rest = joined.len() - from_this;
                    joined[from_this..].copy_from_slice(&buf[..rest]);
                    self.window_start = start;
                    keep_spare(&mut ahead.spares, self.window.replace(joined));
                    return Ok(());
                }
            }
            ahead.next = None;
        }
        let wanted = align_up(end - start).max(READ_WINDOW_BYTES as u64);
        let size = wanted.min(self.segment_size - start);
        let buf = self
            .device
            .read_at(AlignedBuf::zeroed(size as usize), self.segment_base + start)?;
        self.window_start = start;
        self.window = Some(buf);
        self.read_ahead();
        Ok(())
    }

    /// Asks the reader thread (if `scan` runs one) for the window after
    /// this one.
    fn read_ahead(&mut self) {
        let start = self.window_start + self.window.as_ref().map_or(0, |w| w.len() as u64);
        let Some(ahead) = &mut self.ahead else {
            return;
        };
        ahead.next = None;
        if start >= self.segment_size {
            return;
        }
        let len = (READ_WINDOW_BYTES as u64).min(self.segment_size - start) as usize;
        let buf = spare_buffer(&mut ahead.spares, len);
        if ahead
            .requests
            .send((self.segment_base + start, buf))
            .is_ok()
        {
            ahead.next = Some(NextWindow::Asked { start });
        }
    }

    /// The valid record at `offset`, if there is one there.
    fn record_at(
        &mut self,
        offset: u64,
        last_lsn: u64,
    ) -> Result<Option<RecordHeader>, RecoveryError> {
        if offset + RECORD_HEADER_BYTES as u64 > self.segment_size {
            return Ok(None);
        }
        let Some(header) = RecordHeader::peek(self.bytes(offset, RECORD_HEADER_BYTES)?) else {
            return Ok(None);
        };
        if header.lsn < self.first_lsn
            || header.lsn <= last_lsn
            || offset + header.total_len() as u64 > self.segment_size
        {
            return Ok(None);
        }
        let device_uuid = self.device_uuid;
        let whole = self.bytes(offset, header.total_len())?;
        Ok(RecordHeader::verify(&device_uuid, whole).then_some(header))
    }

    /// Walks the segment from `start`, calling `visit` for each valid record
    /// (it returns true when the record's apply was rejected). Returns the
    /// offset just past the last valid record.
    pub fn scan(
        &mut self,
        start: u32,
        last_lsn: &mut u64,
        is_newest: bool,
        report: &mut ScanReport,
        visit: &mut dyn FnMut(ScannedRecord<'_>) -> bool,
    ) -> Result<u32, RecoveryError> {
        let device = self.device;
        std::thread::scope(|scope| {
            let (requests, asked) = mpsc::channel::<(u64, AlignedBuf)>();
            let (answers, replies) = mpsc::channel();
            let reader = std::thread::Builder::new()
                .name("strata-scan-read".into())
                .spawn_scoped(scope, move || {
                    for (offset, buf) in asked {
                        let read = device.read_at(buf, offset);
                        if answers.send((offset, read)).is_err() {
                            return;
                        }
                    }
                });
            // Without the thread, windows are read when needed.
            if reader.is_ok() {
                self.ahead = Some(ReadAhead {
                    requests,
                    replies,
                    next: None,
                    spares: Vec::new(),
                });
            }
            let scanned = self.scan_records(start, last_lsn, is_newest, report, visit);
            // Ends the reader thread, which the scope then joins.
            self.ahead = None;
            scanned
        })
    }

    fn scan_records(
        &mut self,
        start: u32,
        last_lsn: &mut u64,
        is_newest: bool,
        report: &mut ScanReport,
        visit: &mut dyn FnMut(ScannedRecord<'_>) -> bool,
    ) -> Result<u32, RecoveryError> {
        let mut pos = start as u64;
        let mut end = start;
        loop {
            if let Some(header) = self.record_at(pos, *last_lsn)? {
                let len = header.total_len();
                let location = Location {
                    segment: self.segment,
                    offset: pos as u32,
                    len: len as u32,
                };
                let payload =
                    self.bytes(pos + RECORD_HEADER_BYTES as u64, len - RECORD_HEADER_BYTES)?;
                if visit(ScannedRecord {
                    location,
                    header,
                    payload,
                }) {
                    self.rejected += 1;
                } else {
                    self.applied += 1;
                }
                report.bytes_scanned += len as u64;
                *last_lsn = header.lsn;
                pos += len as u64;
                end = pos as u32;
                continue;
            }
            if !pos.is_multiple_of(BLOCK_SIZE as u64) {
                // The rest of a batch's last block is padding.
                pos = align_up(pos);
                continue;
            }
            match self.resync(pos, *last_lsn)? {
                Some(next) => {
                    tracing::error!(
                        segment = self.segment,
                        offset = pos,
                        len = next - pos,
                        "damaged log records skipped"
                    );
                    report.damage.push(Damage {
                        segment: self.segment,
                        offset: pos as u32,
                        len: (next - pos) as u32,
                        torn_tail: false,
                    });
                    pos = next;
                }
                None => {
                    if is_newest && self.looks_written(pos)? {
                        report.damage.push(Damage {
                            segment: self.segment,
                            offset: pos as u32,
                            len: BLOCK_SIZE as u32,
                            torn_tail: true,
                        });
                    }
                    return Ok(end);
                }
            }
        }
    }

    /// The next offset after `from` holding a valid record, within reach.
    fn resync(&mut self, from: u64, last_lsn: u64) -> Result<Option<u64>, RecoveryError> {
        let limit = (from + RESYNC_WINDOW_BYTES).min(self.segment_size);
        let magic = RECORD_MAGIC.to_le_bytes();
        let mut pos = from + 1;
        while pos + RECORD_HEADER_BYTES as u64 <= limit {
            let span = ((limit - pos) as usize).min(1 << 20);
            let found = {
                let bytes = self.bytes(pos, span)?;
                bytes.windows(4).position(|w| w == magic)
            };
            match found {
                Some(at) => {
                    let candidate = pos + at as u64;
                    if self.record_at(candidate, last_lsn)?.is_some() {
                        return Ok(Some(candidate));
                    }
                    pos = candidate + 1;
                }
                None => pos += (span as u64).saturating_sub(3).max(1),
            }
        }
        Ok(None)
    }

    /// Whether the block at `pos` holds anything but zeros (a torn record
    /// rather than the clean end of the log).
    fn looks_written(&mut self, pos: u64) -> Result<bool, RecoveryError> {
        if pos + BLOCK_SIZE as u64 > self.segment_size {
            return Ok(false);
        }
        Ok(self.bytes(pos, BLOCK_SIZE)?.iter().any(|&b| b != 0))
    }
}
