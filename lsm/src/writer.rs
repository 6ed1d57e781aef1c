//! The group-commit log writer. One thread owns the log head. It drains every
//! waiting submission into one batch (up to MAX_BATCH_BYTES), packs the
//! records back to back from a block boundary, writes them, makes them
//! durable with one sync, applies them to the index in log order, and only
//! then answers each submitter. A failed write or sync poisons the writer:
//! afterwards nobody can say what reached the disk, so it only refuses.
//!
//! It keeps two heads: the log head for everything the store writes, and
//! the compaction head for compaction's copies, so that data which has
//! already outlived one segment is packed with its like and new writes
//! (which die young) fill segments of their own.

use std::collections::BTreeSet;
use std::sync::mpsc;
use std::sync::Arc;

use blockdev::{align_up, AlignedBuf, BlockDevice, BLOCK_SIZE};
use parking_lot::RwLock;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::format::{
    Location, Record, RecordHeader, RecordKind, SegmentHeader, SegmentKind, Superblock,
    COUNTER_LIMIT, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES,
};
use crate::index::{Catalog, LogPosition};

/// Free segments held back from data (chunk) records, so that deletes,
/// aborts, checkpoints and compaction's copies still fit on a device full
/// of data: compaction needs room to copy before it can free a segment.
pub const RESERVED_SEGMENTS: usize = 2;

/// Upper bound of one batch write; also bounds what one submission may hold.
pub const MAX_BATCH_BYTES: usize = 8 << 20;

/// Buffers kept from one batch for the next: a batch writes one or two
/// runs, and fresh multi-megabyte buffers cost page faults and zeroing on
/// every batch.
const SPARE_BUFFERS: usize = 2;

/// A record to append: its kind and flags, encoded payload, and the decoded
/// form that `Index::apply` consumes.
pub struct PendingRecord {
    pub flags: u8,
    pub payload: Vec<u8>,
    pub record: Record,
    /// Compaction's copy of a live record: it goes to the compaction head,
    /// and it may use the reserved segments (each copy lets a whole
    /// segment be freed).
    pub relocation: bool,
}

impl PendingRecord {
    pub fn new(record: Record) -> Self {
        PendingRecord {
            flags: 0,
            payload: record.encode_payload(),
            record,
            relocation: false,
        }
    }

    fn kind(&self) -> RecordKind {
        self.record.kind()
    }

    fn total_len(&self) -> usize {
        RECORD_HEADER_BYTES + self.payload.len()
    }
}

/// What a durable submission reports: where each record went, and the
/// outcome of applying them (the first record whose apply failed decides).
#[derive(Debug)]
pub struct Committed {
    pub locations: Vec<Location>,
    pub outcome: Result<()>,
    /// The chunk records written, pinned from the moment they applied until
    /// this is dropped, so compaction cannot free them before a manifest
    /// references them.
    pub pins: PinGuard,
}

/// Locations pinned against compaction; unpinned on drop. Never drop one
/// while holding the catalog lock.
pub struct PinGuard {
    catalog: Arc<RwLock<Catalog>>,
    locations: Vec<Location>,
}

impl PinGuard {
    /// Pins `locations`; the caller holds the catalog's write lock.
    pub fn pin(
        catalog: &Arc<RwLock<Catalog>>,
        held: &mut Catalog,
        locations: Vec<Location>,
    ) -> Self {
        for location in &locations {
            held.space.pin(*location);
        }
        PinGuard {
            catalog: catalog.clone(),
            locations,
        }
    }

    /// Moves `other`'s pins into this guard.
    pub fn absorb(&mut self, mut other: PinGuard) {
        self.locations.append(&mut other.locations);
    }

    pub fn empty(catalog: &Arc<RwLock<Catalog>>) -> Self {
        PinGuard {
            catalog: catalog.clone(),
            locations: Vec::new(),
        }
    }
}

impl std::fmt::Debug for PinGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PinGuard({} locations)", self.locations.len())
    }
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        if self.locations.is_empty() {
            return;
        }
        let mut catalog = self.catalog.write();
        for location in &self.locations {
            catalog.space.unpin(location);
        }
    }
}

struct Submission {
    records: Vec<PendingRecord>,
    reply: oneshot::Sender<Result<Committed>>,
}

/// Waits for a submission to become durable.
pub struct Ticket(oneshot::Receiver<Result<Committed>>);

impl Ticket {
    pub async fn wait(self) -> Result<Committed> {
        self.0.await.unwrap_or(Err(Error::ShuttingDown))
    }

    pub fn wait_blocking(self) -> Result<Committed> {
        self.0.blocking_recv().unwrap_or(Err(Error::ShuttingDown))
    }
}

/// Where the writer resumes after recovery. The compaction head starts
/// afresh in a new segment.
#[derive(Debug, Clone)]
pub struct WriterStart {
    /// The open log segment and the block-aligned offset to append at.
    pub head: Option<LogPosition>,
    pub next_lsn: u64,
    pub next_segment_sequence: u64,
    pub free_segments: BTreeSet<u32>,
}

pub struct LogWriter {
    submissions: parking_lot::RwLock<Option<mpsc::Sender<Submission>>>,
    thread: parking_lot::Mutex<Option<std::thread::JoinHandle<()>>>,
    state: Arc<parking_lot::Mutex<WriterStats>>,
    free: Arc<parking_lot::Mutex<BTreeSet<u32>>>,
}

/// What the writer knows about space, for metrics and admission.
#[derive(Debug, Clone, Default)]
pub struct WriterStats {
    pub free_segments: usize,
    /// The segment compaction's copies are appended to (compaction must not
    /// pick it as a victim).
    pub compaction_head: Option<u32>,
    pub batches: u64,
    pub records: u64,
    pub bytes_written: u64,
}

impl LogWriter {
    pub fn start(
        device: Arc<dyn BlockDevice>,
        superblock: Superblock,
        catalog: Arc<RwLock<Catalog>>,
        start: WriterStart,
    ) -> LogWriter {
        let (tx, rx) = mpsc::channel();
        let stats = Arc::new(parking_lot::Mutex::new(WriterStats {
            free_segments: start.free_segments.len(),
            ..Default::default()
        }));
        let free = Arc::new(parking_lot::Mutex::new(start.free_segments));
        let mut thread = WriterThread {
            device,
            superblock,
            catalog,
            head: start.head,
            compaction_head: None,
            next_lsn: start.next_lsn,
            next_sequence: start.next_segment_sequence,
            free: free.clone(),
            poisoned: None,
            stats: stats.clone(),
            spare_buffers: Vec::new(),
        };
        let handle = std::thread::Builder::new()
            .name("strata-log-writer".into())
            .spawn(move || thread.run(rx))
            .ok();
        LogWriter {
            submissions: parking_lot::RwLock::new(handle.is_some().then_some(tx)),
            thread: parking_lot::Mutex::new(handle),
            state: stats,
            free,
        }
    }

    /// Returns compacted segments to the free list. The caller has made
    /// them unreachable: a committed checkpoint covers them and nothing
    /// references their records.
    pub fn release(&self, segments: impl IntoIterator<Item = u32>) {
        // Never hold the free list and the stats together: the writer
        // thread takes them one at a time too (holding both in opposite
        // orders deadlocked the writer against compaction).
        let free_now = {
            let mut free = self.free.lock();
            free.extend(segments);
            free.len()
        };
        self.state.lock().free_segments = free_now;
    }

    /// Queues records to be appended atomically in order (a submission never
    /// straddles a failed batch) and returns a ticket for its durability.
    pub fn submit(&self, records: Vec<PendingRecord>) -> Ticket {
        let (reply, rx) = oneshot::channel();
        let total: usize = records.iter().map(|r| r.total_len()).sum();
        if total > MAX_BATCH_BYTES {
            let _ = reply.send(Err(Error::TooLarge(format!(
                "{total} bytes in one submission (max {MAX_BATCH_BYTES})"
            ))));
            return Ticket(rx);
        }
        match &*self.submissions.read() {
            Some(tx) => {
                if let Err(mpsc::SendError(sub)) = tx.send(Submission { records, reply }) {
                    let _ = sub.reply.send(Err(Error::ShuttingDown));
                }
            }
            None => {
                let _ = reply.send(Err(Error::ShuttingDown));
            }
        }
        Ticket(rx)
    }

    pub fn stats(&self) -> WriterStats {
        self.state.lock().clone()
    }

    /// Stops accepting, finishes what is queued, and joins the thread.
    pub fn shutdown(&self) {
        self.submissions.write().take();
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct WriterThread {
    device: Arc<dyn BlockDevice>,
    superblock: Superblock,
    catalog: Arc<RwLock<Catalog>>,
    head: Option<LogPosition>,
    compaction_head: Option<LogPosition>,
    next_lsn: u64,
    next_sequence: u64,
    free: Arc<parking_lot::Mutex<BTreeSet<u32>>>,
    poisoned: Option<String>,
    stats: Arc<parking_lot::Mutex<WriterStats>>,
    spare_buffers: Vec<AlignedBuf>,
}

/// A batch being laid out: contiguous device writes (one per segment it
/// touches) and where the heads will be once it is durable.
struct Batch {
    runs: Vec<Run>,
    head: Option<LogPosition>,
    compaction_head: Option<LogPosition>,
    next_lsn: u64,
    next_sequence: u64,
    /// Segments opened by this batch, with their headers.
    taken_segments: Vec<(u32, SegmentHeader)>,
}

/// A batch as it was before a submission was placed, to undo it.
struct Mark {
    run_lens: Vec<usize>,
    head: Option<LogPosition>,
    compaction_head: Option<LogPosition>,
    next_lsn: u64,
    next_sequence: u64,
    taken: usize,
}

impl WriterThread {
    fn run(&mut self, rx: mpsc::Receiver<Submission>) {
        while let Ok(first) = rx.recv() {
            let mut subs = vec![first];
            let mut bytes: usize = subs[0].records.iter().map(|r| r.total_len()).sum();
            while bytes < MAX_BATCH_BYTES {
                match rx.try_recv() {
                    Ok(sub) => {
                        bytes += sub.records.iter().map(|r| r.total_len()).sum::<usize>();
                        subs.push(sub);
                    }
                    Err(_) => break,
                }
            }
            self.commit(subs);
        }
    }

    fn commit(&mut self, subs: Vec<Submission>) {
        if let Some(reason) = &self.poisoned {
            for sub in subs {
                let _ = sub.reply.send(Err(Error::Failed(reason.clone())));
            }
            return;
        }
        let mut batch = Batch {
            runs: Vec::new(),
            head: self.head,
            compaction_head: self.compaction_head,
            next_lsn: self.next_lsn,
            next_sequence: self.next_sequence,
            taken_segments: Vec::new(),
        };
        let mut placed = Vec::with_capacity(subs.len());
        for sub in subs {
            let mark = batch.mark();
            match self.place(&mut batch, &sub.records) {
                Ok(locations) => placed.push((sub, locations)),
                Err(e) => {
                    batch.rewind(mark, &mut self.free.lock());
                    let _ = sub.reply.send(Err(e));
                }
            }
        }
        if placed.is_empty() {
            batch
                .runs
                .into_iter()
                .for_each(|run| self.keep_buffer(run.buf));
            return;
        }
        let bytes_written: u64 = batch.runs.iter().map(|r| align_up(r.len as u64)).sum();
        if let Err(e) = self.write_and_sync(std::mem::take(&mut batch.runs)) {
            // Segments taken for this batch go back; the head does not move.
            self.free
                .lock()
                .extend(batch.taken_segments.iter().map(|(s, _)| *s));
            let error = Error::from_device(e);
            if !matches!(error, Error::NoSpace) {
                let reason = error.to_string();
                tracing::error!(%reason, "log write failed; the store is now read-only");
                self.poisoned = Some(reason);
            }
            for (sub, _) in placed {
                let _ = sub.reply.send(Err(match &error {
                    Error::NoSpace => Error::NoSpace,
                    other => Error::Failed(other.to_string()),
                }));
            }
            return;
        }
        // Durable: the next batch starts at the next block boundary.
        let aligned = |h: LogPosition| LogPosition {
            offset: align_up(h.offset as u64) as u32,
            ..h
        };
        self.head = batch.head.map(aligned);
        self.compaction_head = batch.compaction_head.map(aligned);
        self.next_lsn = batch.next_lsn;
        self.next_sequence = batch.next_sequence;
        {
            let free_now = self.free.lock().len();
            let mut stats = self.stats.lock();
            stats.free_segments = free_now;
            stats.compaction_head = self.compaction_head.map(|h| h.segment);
            stats.batches += 1;
            stats.records += placed
                .iter()
                .map(|(s, _)| s.records.len() as u64)
                .sum::<u64>();
            stats.bytes_written += bytes_written;
        }
        let mut outcomes = Vec::with_capacity(placed.len());
        {
            let mut catalog = self.catalog.write();
            for (segment, header) in &batch.taken_segments {
                catalog.space.note_segment(*segment, header);
            }
            for (sub, locations) in &placed {
                let mut outcome = Ok(());
                let mut chunks = Vec::new();
                for (record, (location, lsn)) in sub.records.iter().zip(locations) {
                    let applied = catalog.apply(*lsn, *location, &record.record);
                    if outcome.is_ok() {
                        outcome = applied;
                    }
                    if matches!(record.record, Record::Chunk { .. }) {
                        chunks.push(*location);
                    }
                }
                let pins = PinGuard::pin(&self.catalog, &mut catalog, chunks);
                outcomes.push((outcome, pins));
            }
            catalog.index.tail = batch.head;
        }
        // A reply nobody waits for any more drops its pins here, after the
        // lock is released.
        for ((sub, locations), (outcome, pins)) in placed.into_iter().zip(outcomes) {
            let _ = sub.reply.send(Ok(Committed {
                locations: locations.into_iter().map(|(l, _)| l).collect(),
                outcome,
                pins,
            }));
        }
    }

    /// Lays records out after their head, opening new segments as needed.
    fn place(
        &mut self,
        batch: &mut Batch,
        records: &[PendingRecord],
    ) -> Result<Vec<(Location, u64)>> {
        let segment_size = self.superblock.segment_size_bytes;
        let mut out = Vec::with_capacity(records.len());
        for record in records {
            let len = record.total_len() as u64;
            if len > segment_size - SEGMENT_HEADER_BYTES as u64 {
                return Err(Error::TooLarge(format!(
                    "record of {len} bytes exceeds a segment"
                )));
            }
            let kind = if record.relocation {
                SegmentKind::Compaction
            } else {
                SegmentKind::Log
            };
            let fits = batch
                .head_mut(kind)
                .is_some_and(|h| h.offset as u64 + len <= segment_size);
            // Data may not eat into the reserve: after placing it, at least
            // RESERVED_SEGMENTS segments must still be free.
            let carries_data = matches!(record.record, Record::Chunk { .. }) && !record.relocation;
            let free_now = self.free.lock().len();
            let free_after = free_now.saturating_sub(usize::from(!fits));
            if carries_data
                && (free_after < RESERVED_SEGMENTS || (!fits && free_now <= RESERVED_SEGMENTS))
            {
                return Err(Error::NoSpace);
            }
            if !fits {
                self.open_segment(batch, kind)?;
            }
            let Some(head) = *batch.head_mut(kind) else {
                return Err(Error::NoSpace);
            };
            let device_offset = self.superblock.segment_offset(head.segment) + head.offset as u64;
            // Each head extends its own run: the two heads' records may
            // alternate within a batch.
            let run = match batch.runs.iter().position(|r| r.end() == device_offset) {
                Some(run) => run,
                None => {
                    batch
                        .runs
                        .push(Run::new(device_offset, self.spare_buffers.pop()));
                    batch.runs.len() - 1
                }
            };
            let lsn = batch.next_lsn;
            if lsn >= COUNTER_LIMIT {
                return Err(Error::Failed("log sequence numbers exhausted".into()));
            }
            batch.next_lsn += 1;
            let header = RecordHeader {
                kind: record.kind(),
                flags: record.flags,
                payload_len: record.payload.len() as u32,
                lsn,
            };
            header.encode_into(&record.payload, batch.runs[run].extend(len as usize));
            out.push((
                Location {
                    segment: head.segment,
                    offset: head.offset,
                    len: len as u32,
                },
                lsn,
            ));
            if let Some(head) = batch.head_mut(kind) {
                head.offset += len as u32;
            }
        }
        Ok(out)
    }

    fn open_segment(&mut self, batch: &mut Batch, kind: SegmentKind) -> Result<()> {
        let segment = self.free.lock().pop_first().ok_or(Error::NoSpace)?;
        let sequence = batch.next_sequence;
        if sequence >= COUNTER_LIMIT {
            return Err(Error::Failed("segment sequence numbers exhausted".into()));
        }
        batch.next_sequence += 1;
        let header = SegmentHeader {
            device_uuid: self.superblock.device_uuid,
            sequence,
            first_lsn: batch.next_lsn,
            kind,
        };
        batch.taken_segments.push((segment, header));
        let mut run = Run::new(
            self.superblock.segment_offset(segment),
            self.spare_buffers.pop(),
        );
        let block = run.extend(SEGMENT_HEADER_BYTES as usize);
        let encoded = header.encode();
        block[..encoded.len()].copy_from_slice(&encoded);
        block[encoded.len()..].fill(0);
        batch.runs.push(run);
        *batch.head_mut(kind) = Some(LogPosition {
            segment,
            sequence,
            offset: SEGMENT_HEADER_BYTES,
        });
        Ok(())
    }

    /// Writes the runs, then makes them durable with one sync; their
    /// buffers are kept for the next batch.
    fn write_and_sync(&mut self, runs: Vec<Run>) -> std::result::Result<(), blockdev::DeviceError> {
        for run in runs {
            let Run {
                offset,
                mut buf,
                len,
            } = run;
            // The block's tail past the last record is padding: zeros, not
            // what an earlier batch left in this buffer.
            let padded = align_up(len as u64) as usize;
            buf[len..padded].fill(0);
            buf.set_len(padded);
            let buf = self.device.write_at(buf, offset)?;
            self.keep_buffer(buf);
        }
        self.device.sync()
    }

    fn keep_buffer(&mut self, buf: AlignedBuf) {
        if self.spare_buffers.len() < SPARE_BUFFERS {
            self.spare_buffers.push(buf);
        }
    }
}

/// One contiguous device write being filled. Records are encoded straight
/// into block-aligned memory, so a batch is written without another copy.
struct Run {
    offset: u64,
    /// Its whole allocation is visible; `len` bytes are filled.
    buf: AlignedBuf,
    len: usize,
}

impl Run {
    fn new(offset: u64, spare: Option<AlignedBuf>) -> Run {
        let mut buf = spare.unwrap_or_else(|| AlignedBuf::zeroed(BLOCK_SIZE));
        buf.set_len(buf.capacity());
        Run {
            offset,
            buf,
            len: 0,
        }
    }

    fn end(&self) -> u64 {
        self.offset + self.len as u64
    }

    /// The next `n` bytes of the run, to be filled by the caller.
    fn extend(&mut self, n: usize) -> &mut [u8] {
        // A whole block past the data, so the padding fits too.
        let needed = self.len + n + BLOCK_SIZE;
        if needed > self.buf.len() {
            let mut bigger = AlignedBuf::zeroed(needed.max(2 * self.buf.len()));
            bigger[..self.len].copy_from_slice(&self.buf[..self.len]);
            self.buf = bigger;
        }
        let at = self.len;
        self.len += n;
        &mut self.buf[at..at + n]
    }
}

impl Batch {
    fn head_mut(&mut self, kind: SegmentKind) -> &mut Option<LogPosition> {
        match kind {
            SegmentKind::Log => &mut self.head,
            SegmentKind::Compaction => &mut self.compaction_head,
        }
    }

    fn mark(&self) -> Mark {
        Mark {
            run_lens: self.runs.iter().map(|r| r.len).collect(),
            head: self.head,
            compaction_head: self.compaction_head,
            next_lsn: self.next_lsn,
            next_sequence: self.next_sequence,
            taken: self.taken_segments.len(),
        }
    }

    fn rewind(&mut self, mark: Mark, free: &mut BTreeSet<u32>) {
        self.runs.truncate(mark.run_lens.len());
        for (run, len) in self.runs.iter_mut().zip(mark.run_lens) {
            run.len = len;
        }
        self.head = mark.head;
        self.compaction_head = mark.compaction_head;
        self.next_lsn = mark.next_lsn;
        self.next_sequence = mark.next_sequence;
        for (segment, _) in self.taken_segments.drain(mark.taken..) {
            free.insert(segment);
        }
    }
}
