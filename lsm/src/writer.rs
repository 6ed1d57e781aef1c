//! The group-commit log writer. A writer thread owns the log's heads; an
//! I/O thread owns the device writes. The writer thread drains every
//! waiting submission into one batch (up to MAX_BATCH_BYTES), packing the
//! records back to back from a block boundary; the I/O thread writes the
//! batch and makes it durable with one sync; the writer thread then
//! applies its records to the index in log order, and only then answers
//! each submitter. While one batch is at the device the writer thread lays
//! out the next. A batch of new chunks alone goes to the device at once,
//! behind the one there (see MAX_BATCHES_IN_FLIGHT); any other waits for
//! the device to be idle. If a batch fails, those behind it are taken back
//! with it and laid out again.
//!
//! A batch of new chunks alone is not synced (see
//! `PendingRecord::needs_sync`): the next batch that is synced first syncs
//! what came before it, so nothing that references a chunk reaches the
//! device before the chunk is durable.
//!
//! A failed write or sync (other than a full device) poisons the writer:
//! afterwards nobody can say what reached the disk, so it only refuses.
//!
//! It keeps two heads: the log head for everything the store writes, and
//! the compaction head for compaction's copies, so that data which has
//! already outlived one segment is packed with its like and new writes
//! (which die young) fill segments of their own.

use std::collections::{BTreeSet, VecDeque};
use std::sync::mpsc;
use std::sync::Arc;

use blockdev::{align_up, AlignedBuf, BlockDevice, DeviceError, BLOCK_SIZE, WRITE_PIECE_BYTES};
use parking_lot::RwLock;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::format::{
    Location, Record, RecordHeader, RecordKind, SegmentHeader, SegmentKind, Superblock,
    COUNTER_LIMIT, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES,
};
use crate::index::{Catalog, LogPosition, ObjectEntry};

/// Free segments held back from data (chunk) records, so that deletes,
/// aborts, checkpoints and compaction's copies still fit on a device full
/// of data: compaction needs room to copy before it can free a segment.
pub const RESERVED_SEGMENTS: usize = 2;

/// Upper bound of one batch write; also bounds what one submission may hold.
pub const MAX_BATCH_BYTES: usize = 8 << 20;

/// At most this many bytes are written past the last sync. Recovery looks
/// this far past damage for more records, so a record that survived a
/// crash farther out would be missed and its lsn handed out again. A sync
/// waits for every write in flight, so this is also how often a stream of
/// new chunks lets the device queue drain.
pub const MAX_UNSYNCED_BYTES: usize = 32 << 20;

/// Batches at the device at once. A batch of new chunks alone (unsynced)
/// is sent behind the one there, so its writes start while the first
/// batch's drain: with one batch at a time, the queue emptied at the end
/// of every batch. A synced batch waits for the device to be idle,
/// because its sync must cover everything written before it.
const MAX_BATCHES_IN_FLIGHT: usize = 2;

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

    /// A new chunk is acknowledged once written, not synced: nothing can
    /// reference it until a manifest (an object, a part) commits, and that
    /// batch's sync makes every earlier write durable too. A large body
    /// then costs one sync, not one per batch of its chunks. Compaction's
    /// copies are synced: on a sparse file, leaving their block
    /// allocations to the next foreground sync made that sync slow.
    fn needs_sync(&self) -> bool {
        self.relocation || !matches!(self.record, Record::Chunk { .. })
    }

    fn total_len(&self) -> usize {
        RECORD_HEADER_BYTES + self.payload.len()
    }
}

/// What a written submission reports (durable unless it held only new
/// chunks): where each record went, and the
/// outcome of applying them (the first record whose apply failed decides).
#[derive(Debug)]
pub struct Committed {
    pub locations: Vec<Location>,
    pub outcome: Result<()>,
    /// The versions its records made, removed or changed, in order.
    pub versions: Vec<Arc<ObjectEntry>>,
    /// The chunk records written, pinned from the moment they applied until
    /// this is dropped, so compaction cannot free them before a manifest
    /// references them.
    pub pins: PinGuard,
}

impl Committed {
    /// Where a submission of one record put it, once that succeeded, with
    /// its pins.
    pub fn into_single(self) -> Result<(Location, PinGuard)> {
        self.outcome?;
        let location = self
            .locations
            .first()
            .copied()
            .ok_or_else(|| Error::Failed("writer returned no location".into()))?;
        Ok((location, self.pins))
    }
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

impl Submission {
    fn bytes(&self) -> usize {
        self.records.iter().map(|r| r.total_len()).sum()
    }
}

impl Submission {
    fn needs_sync(&self) -> bool {
        self.records.iter().any(PendingRecord::needs_sync)
    }
}

/// What reaches the writer thread, in one queue so that it waits for
/// whichever comes first.
enum Message {
    Submit(Submission),
    /// The I/O thread finished the oldest batch in flight.
    Written(Written),
    /// Finish what is queued, then stop.
    Shutdown,
}

struct Written {
    /// The job it is about (`DeviceJob::id`).
    job: u64,
    outcome: std::result::Result<(), blockdev::DeviceError>,
    /// Later writes must not build on the device as it stands, whatever the
    /// error says: a sync of writes acknowledged earlier (new chunks)
    /// failed, so they may be lost, or what the failed batch landed could
    /// not be taken back.
    must_stop: bool,
    buffers: Vec<AlignedBuf>,
}

/// What reaches the I/O thread, in one queue: jobs from the writer
/// thread, and the device's word that one of their writes finished.
enum IoEvent {
    Job(DeviceJob),
    RunWritten {
        job: u64,
        outcome: std::result::Result<AlignedBuf, DeviceError>,
    },
    /// The writer thread has ended.
    Stop,
}

/// A batch's writes, for the I/O thread.
struct DeviceJob {
    /// Increasing; reports name the job they are about.
    id: u64,
    /// Failures the writer thread had heard of when it sent this job. One
    /// sent before it heard of a failure was laid out behind writes that
    /// were taken back: the I/O thread drops it, and the writer thread lays
    /// its submissions out again.
    epoch: u64,
    runs: Vec<Run>,
    sync: bool,
    /// Segments this batch opens: where each starts, and its new header.
    opened: Vec<(u64, Vec<u8>)>,
}

impl DeviceJob {
    fn ranges(&self) -> Vec<(u64, u64)> {
        self.runs
            .iter()
            .map(|r| (r.offset, align_up(r.len as u64)))
            .collect()
    }
}

/// Waits for a submission to be written (and durable, as `Committed` says).
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
    submissions: parking_lot::RwLock<Option<mpsc::Sender<Message>>>,
    threads: parking_lot::Mutex<Vec<std::thread::JoinHandle<()>>>,
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
        let (jobs, io_events) = mpsc::channel();
        let stats = Arc::new(parking_lot::Mutex::new(WriterStats {
            free_segments: start.free_segments.len(),
            ..Default::default()
        }));
        let free = Arc::new(parking_lot::Mutex::new(start.free_segments));
        let committed = Heads {
            log: start.head,
            compaction: None,
            next_lsn: start.next_lsn,
            next_sequence: start.next_segment_sequence,
        };
        let thread = WriterThread {
            superblock,
            catalog,
            committed,
            in_flight: VecDeque::new(),
            filling: Batch::starting_at(committed),
            waiting: VecDeque::new(),
            jobs: jobs.clone(),
            next_job: 0,
            failures: 0,
            stopping: false,
            free: free.clone(),
            poisoned: None,
            stats: stats.clone(),
            spare_buffers: Vec::new(),
        };
        let written = tx.clone();
        let io = std::thread::Builder::new()
            .name("strata-log-io".into())
            .spawn(move || write_jobs(device.as_ref(), io_events, jobs, written))
            .ok();
        // Without the I/O thread the writer's jobs fail, and it says so.
        let writer = std::thread::Builder::new()
            .name("strata-log-writer".into())
            .spawn(move || thread.run(rx))
            .ok();
        let running = writer.is_some() && io.is_some();
        LogWriter {
            submissions: parking_lot::RwLock::new(running.then_some(tx)),
            threads: parking_lot::Mutex::new(writer.into_iter().chain(io).collect()),
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
        let submission = Submission { records, reply };
        let total = submission.bytes();
        if total > MAX_BATCH_BYTES {
            let _ = submission.reply.send(Err(Error::TooLarge(format!(
                "{total} bytes in one submission (max {MAX_BATCH_BYTES})"
            ))));
            return Ticket(rx);
        }
        match &*self.submissions.read() {
            Some(tx) => {
                if let Err(mpsc::SendError(Message::Submit(sub))) =
                    tx.send(Message::Submit(submission))
                {
                    let _ = sub.reply.send(Err(Error::ShuttingDown));
                }
            }
            None => {
                let _ = submission.reply.send(Err(Error::ShuttingDown));
            }
        }
        Ticket(rx)
    }

    pub fn stats(&self) -> WriterStats {
        self.state.lock().clone()
    }

    /// Stops accepting, finishes what is queued, and joins the threads.
    pub fn shutdown(&self) {
        if let Some(tx) = self.submissions.write().take() {
            let _ = tx.send(Message::Shutdown);
        }
        // The writer first: its end closes the I/O thread's queue.
        for thread in self.threads.lock().drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The I/O thread: performs each batch's writes (and sync) in order while
/// the writer thread lays out the next batch.
fn write_jobs(
    device: &dyn BlockDevice,
    events: mpsc::Receiver<IoEvent>,
    events_sender: mpsc::Sender<IoEvent>,
    written: mpsc::Sender<Message>,
) {
    let mut io = IoThread {
        device,
        events: events_sender,
        written,
        started: VecDeque::new(),
        queued: VecDeque::new(),
        // Unknown at first: a process killed before its last sync leaves
        // writes that recovery read back but nothing made durable.
        unsynced_bytes: u64::MAX,
        epoch: 0,
    };
    while let Ok(event) = events.recv() {
        match event {
            IoEvent::Job(job) => {
                if job.epoch == io.epoch {
                    io.queued.push_back(job);
                }
            }
            IoEvent::RunWritten { job, outcome } => io.run_written(job, outcome),
            IoEvent::Stop => return,
        }
        io.advance();
    }
}

/// A job whose writes are at the device.
struct StartedJob {
    id: u64,
    ranges: Vec<(u64, u64)>,
    opened: Vec<(u64, Vec<u8>)>,
    sync: bool,
    runs_left: usize,
    buffers: Vec<AlignedBuf>,
    error: Option<DeviceError>,
}

impl StartedJob {
    fn bytes(&self) -> u64 {
        self.ranges.iter().map(|(_, len)| len).sum()
    }
}

struct IoThread<'a> {
    device: &'a dyn BlockDevice,
    /// For the device to report finished writes on.
    events: mpsc::Sender<IoEvent>,
    written: mpsc::Sender<Message>,
    /// Jobs at the device, oldest first; each is reported in this order.
    started: VecDeque<StartedJob>,
    /// Jobs waiting to start: behind a failure not yet reported, or for a
    /// sync that must first cover the jobs in flight.
    queued: VecDeque<DeviceJob>,
    /// Bytes written since the last sync, jobs in flight included.
    unsynced_bytes: u64,
    /// Failures reported to the writer thread (see `DeviceJob::epoch`).
    epoch: u64,
}

impl IoThread<'_> {
    fn run_written(&mut self, id: u64, outcome: std::result::Result<AlignedBuf, DeviceError>) {
        let Some(job) = self.started.iter_mut().find(|j| j.id == id) else {
            return;
        };
        job.runs_left -= 1;
        match outcome {
            Ok(buf) => job.buffers.push(buf),
            Err(e) => {
                job.error.get_or_insert(e);
            }
        }
    }

    /// Reports the jobs that are done, in order, and starts what may start.
    fn advance(&mut self) {
        loop {
            if self.started.front().is_some_and(|j| j.runs_left == 0) {
                if self.finish_oldest() {
                    continue;
                }
                return;
            }
            let Some(job) = self.queued.front() else {
                return;
            };
            // Nothing starts behind a failure: it would be taken back.
            if self.started.iter().any(|j| j.error.is_some()) {
                return;
            }
            // What a synced batch references (chunks acknowledged earlier)
            // must be durable before the batch is written: if both were in
            // flight at a crash, the reference could survive its target.
            // And no more than MAX_UNSYNCED_BYTES are ever left unsynced.
            let job_bytes: u64 = job.runs.iter().map(|r| align_up(r.len as u64)).sum();
            let beyond_limit =
                self.unsynced_bytes.saturating_add(job_bytes) > MAX_UNSYNCED_BYTES as u64;
            if self.unsynced_bytes > 0 && (job.sync || beyond_limit) {
                // A sync covers only the writes that have finished.
                if !self.started.is_empty() {
                    return;
                }
                if let Err(e) = self.device.sync() {
                    // The chunks acknowledged since the last sync may be
                    // lost: nothing may build on them.
                    let id = job.id;
                    self.report_failure(id, e, true, Vec::new());
                    continue;
                }
                self.unsynced_bytes = 0;
            }
            if let Some(job) = self.queued.pop_front() {
                self.start(job);
            }
        }
    }

    fn start(&mut self, job: DeviceJob) {
        let ranges = job.ranges();
        let started = StartedJob {
            id: job.id,
            runs_left: job.runs.len(),
            buffers: Vec::with_capacity(job.runs.len()),
            sync: job.sync,
            opened: job.opened,
            error: None,
            ranges,
        };
        self.unsynced_bytes = self.unsynced_bytes.saturating_add(started.bytes());
        self.started.push_back(started);
        for run in job.runs {
            let offset = run.offset;
            let events = self.events.clone();
            let id = job.id;
            self.device.start_write(
                run.into_padded(),
                offset,
                Box::new(move |outcome| {
                    let _ = events.send(IoEvent::RunWritten { job: id, outcome });
                }),
            );
        }
    }

    /// The oldest job's writes are done: syncs it if it asks, and reports
    /// it. A failure is reported once nothing behind it is still being
    /// written, after taking back all of it. Returns whether it reported.
    fn finish_oldest(&mut self) -> bool {
        let Some(oldest) = self.started.front_mut() else {
            return false;
        };
        if oldest.error.is_none() && oldest.sync {
            if let Err(e) = self.device.sync() {
                oldest.error = Some(e);
            }
        }
        if oldest.error.is_some() && self.started.iter().any(|j| j.runs_left > 0) {
            return false;
        }
        let Some(oldest) = self.started.pop_front() else {
            return false;
        };
        let Some(error) = oldest.error else {
            if oldest.sync {
                // The sync covered what had finished; the jobs behind may
                // still be at the device.
                self.unsynced_bytes = self.started.iter().map(StartedJob::bytes).sum();
            }
            let done = Written {
                job: oldest.id,
                outcome: Ok(()),
                must_stop: false,
                buffers: oldest.buffers,
            };
            let _ = self.written.send(Message::Written(done));
            return true;
        };
        // The jobs behind it were laid out after it: they go too.
        let mut ranges = oldest.ranges;
        let mut opened = oldest.opened;
        for job in self.started.drain(..) {
            ranges.extend(job.ranges);
            opened.extend(job.opened);
        }
        let taken_back = take_back(self.device, &ranges, &opened).is_ok();
        if taken_back {
            self.unsynced_bytes = 0;
        }
        self.report_failure(oldest.id, error, !taken_back, oldest.buffers);
        true
    }

    /// Reports job `id` failed; every job queued behind it is dropped, and
    /// so is any the writer thread sent before it hears of this.
    fn report_failure(
        &mut self,
        id: u64,
        error: DeviceError,
        must_stop: bool,
        buffers: Vec<AlignedBuf>,
    ) {
        self.queued.clear();
        self.epoch += 1;
        let failed = Written {
            job: id,
            outcome: Err(error),
            must_stop,
            buffers,
        };
        let _ = self.written.send(Message::Written(failed));
    }
}

/// Undoes, durably, whatever a failed batch landed past the log's end. A
/// file system out of space writes what fits before ENOSPC, so records of
/// puts told NoSpace could otherwise come back at recovery.
///
/// A segment the batch opened keeps its header block, never zeroed: a
/// header is how recovery numbers above what a segment may still hold (a
/// freed segment can hold a cut-short compaction round's copies). If the
/// new header landed, its numbers are above anything there, so the records
/// after it are taken back and the segment reads as empty. If it did not,
/// the segment is left as it was: under its old header (or none) recovery
/// neither replays what landed there nor lets it pass for a later record.
fn take_back(
    device: &dyn BlockDevice,
    ranges: &[(u64, u64)],
    opened: &[(u64, Vec<u8>)],
) -> std::result::Result<(), DeviceError> {
    for &(offset, len) in ranges {
        let mut start = offset;
        if let Some((_, header)) = opened.iter().find(|(at, _)| *at == offset) {
            let block = device.read_at(AlignedBuf::zeroed(BLOCK_SIZE), offset)?;
            if !block.starts_with(header) {
                continue;
            }
            start += BLOCK_SIZE as u64;
        }
        zero_range(device, start, offset + len)?;
    }
    device.sync()
}

/// Makes `start..end` read as zeros. Punching a hole in a file needs no
/// space and reads as zeros; a device's discard may keep the bytes, so
/// whatever still reads nonzero is overwritten, block by block (a block
/// that reads as zeros may be a hole that would need space to write).
fn zero_range(
    device: &dyn BlockDevice,
    start: u64,
    end: u64,
) -> std::result::Result<(), DeviceError> {
    if start >= end {
        return Ok(());
    }
    device.discard(start, end - start)?;
    let mut at = start;
    while at < end {
        let piece = (end - at).min(WRITE_PIECE_BYTES as u64) as usize;
        let read = device.read_at(AlignedBuf::zeroed(piece), at)?;
        for (i, block) in read.chunks(BLOCK_SIZE).enumerate() {
            if block.iter().any(|&b| b != 0) {
                let block_at = at + (i * BLOCK_SIZE) as u64;
                device.write_at(AlignedBuf::zeroed(BLOCK_SIZE), block_at)?;
            }
        }
        at += piece as u64;
    }
    Ok(())
}

/// Where the heads stand, with the counters that go with them.
#[derive(Debug, Clone, Copy, Default)]
struct Heads {
    log: Option<LogPosition>,
    compaction: Option<LogPosition>,
    next_lsn: u64,
    next_sequence: u64,
}

impl Heads {
    /// Where the next batch starts: each head at its next block boundary.
    fn aligned(self) -> Heads {
        let aligned = |h: LogPosition| LogPosition {
            offset: align_up(h.offset as u64) as u32,
            ..h
        };
        Heads {
            log: self.log.map(aligned),
            compaction: self.compaction.map(aligned),
            ..self
        }
    }

    fn of(&mut self, kind: SegmentKind) -> &mut Option<LogPosition> {
        match kind {
            SegmentKind::Log => &mut self.log,
            SegmentKind::Compaction => &mut self.compaction,
        }
    }
}

/// The writer thread pipelines: while batches are at the device, it lays
/// out the next one (placing and encoding records costs CPU that would
/// otherwise leave the device idle). The next batch is laid out after the
/// ones in flight; if one of them fails, the batches behind it are laid
/// out again from where the log really ends.
struct WriterThread {
    superblock: Superblock,
    catalog: Arc<RwLock<Catalog>>,
    /// The end of the log as written by completed batches.
    committed: Heads,
    /// Batches at the device, oldest first (MAX_BATCHES_IN_FLIGHT at most).
    in_flight: VecDeque<Batch>,
    filling: Batch,
    /// Submissions that did not fit in the filling batch, in order.
    waiting: VecDeque<Submission>,
    jobs: mpsc::Sender<IoEvent>,
    next_job: u64,
    /// Failures the I/O thread reported (see `DeviceJob::epoch`).
    failures: u64,
    stopping: bool,
    free: Arc<parking_lot::Mutex<BTreeSet<u32>>>,
    poisoned: Option<String>,
    stats: Arc<parking_lot::Mutex<WriterStats>>,
    spare_buffers: Vec<AlignedBuf>,
}

/// A batch being laid out: contiguous device writes (one per segment it
/// touches), the submissions placed in it, and where the heads will be once
/// it is written.
#[derive(Default)]
struct Batch {
    /// Its job's id, once sent.
    job: u64,
    runs: Vec<Run>,
    heads: Heads,
    /// Segments opened by this batch, with their headers.
    taken_segments: Vec<(u32, SegmentHeader)>,
    placed: Vec<(Submission, Vec<(Location, u64)>)>,
    /// What its records add up to (bounded by MAX_BATCH_BYTES).
    bytes: usize,
    /// What it writes, headers and padding included; set when it is sent.
    device_bytes: u64,
}

/// A batch as it was before a submission was placed, to undo it.
struct Mark {
    run_lens: Vec<usize>,
    heads: Heads,
    taken: usize,
}

impl WriterThread {
    fn run(mut self, rx: mpsc::Receiver<Message>) {
        while let Ok(message) = rx.recv() {
            self.handle(message);
            // Everything already queued joins the batch before it is sent.
            while let Ok(message) = rx.try_recv() {
                self.handle(message);
            }
            self.send_ready();
            let drained = self.in_flight.is_empty()
                && self.filling.placed.is_empty()
                && self.waiting.is_empty();
            if self.stopping && drained {
                return;
            }
        }
    }

    fn handle(&mut self, message: Message) {
        match message {
            Message::Submit(sub) => {
                if let Some(reason) = &self.poisoned {
                    let _ = sub.reply.send(Err(Error::Failed(reason.clone())));
                    return;
                }
                self.waiting.push_back(sub);
                self.fill();
            }
            Message::Written(written) => self.finish_in_flight(written),
            Message::Shutdown => self.stopping = true,
        }
    }

    /// Places waiting submissions in the filling batch while they fit.
    fn fill(&mut self) {
        let mut batch = std::mem::take(&mut self.filling);
        while let Some(sub) = self.waiting.front() {
            if !batch.placed.is_empty() && batch.bytes + sub.bytes() > MAX_BATCH_BYTES {
                break;
            }
            let Some(sub) = self.waiting.pop_front() else {
                break;
            };
            let mark = batch.mark();
            match self.place(&mut batch, &sub.records) {
                Ok(locations) => {
                    batch.bytes += sub.bytes();
                    batch.placed.push((sub, locations));
                }
                Err(e) => {
                    batch.rewind(mark, &mut self.free.lock());
                    let _ = sub.reply.send(Err(e));
                }
            }
        }
        self.filling = batch;
    }

    /// Sends the filling batch if the device may take it now.
    fn send_ready(&mut self) {
        let may_send = self.in_flight.is_empty()
            || (self.in_flight.len() < MAX_BATCHES_IN_FLIGHT
                && !self.filling.placed.iter().any(|(sub, _)| sub.needs_sync()));
        if may_send {
            self.send_filling();
        }
    }

    /// Hands the filling batch to the I/O thread and starts the next one
    /// where it ends.
    fn send_filling(&mut self) {
        if self.filling.placed.is_empty() {
            return;
        }
        let next = Batch::starting_at(self.filling.heads.aligned());
        let mut batch = std::mem::replace(&mut self.filling, next);
        batch.job = self.next_job;
        self.next_job += 1;
        batch.device_bytes = batch.runs.iter().map(|r| align_up(r.len as u64)).sum();
        let opened = batch
            .taken_segments
            .iter()
            .map(|(segment, header)| (self.superblock.segment_offset(*segment), header.encode()))
            .collect();
        let job = DeviceJob {
            id: batch.job,
            epoch: self.failures,
            sync: batch.placed.iter().any(|(sub, _)| sub.needs_sync()),
            runs: std::mem::take(&mut batch.runs),
            opened,
        };
        self.in_flight.push_back(batch);
        if self.jobs.send(IoEvent::Job(job)).is_err() {
            // Without the I/O thread nothing in flight will be reported.
            let oldest = self.in_flight.front().map_or(0, |b| b.job);
            self.finish_in_flight(Written {
                job: oldest,
                outcome: Err(DeviceError::EngineStopped),
                must_stop: true,
                buffers: Vec::new(),
            });
            return;
        }
        self.fill();
    }

    fn finish_in_flight(&mut self, written: Written) {
        for buf in written.buffers {
            self.keep_buffer(buf);
        }
        if self.in_flight.front().map(|b| b.job) != Some(written.job) {
            return;
        }
        let Some(batch) = self.in_flight.pop_front() else {
            return;
        };
        match written.outcome {
            Ok(()) => {
                self.committed = batch.heads.aligned();
                // The device gets the next batch before this one is applied.
                self.send_ready();
                self.publish(batch);
            }
            Err(e) => {
                self.failures += 1;
                // The I/O thread took back the batches behind this one too.
                let behind: Vec<Batch> = self.in_flight.drain(..).collect();
                // Segments taken for these batches go back; the log does
                // not grow.
                self.free.lock().extend(
                    std::iter::once(&batch)
                        .chain(&behind)
                        .flat_map(|b| b.taken_segments.iter().map(|(s, _)| *s)),
                );
                let error = Error::from_device(e);
                let full = matches!(error, Error::NoSpace) && !written.must_stop;
                if !full {
                    let reason = error.to_string();
                    tracing::error!(%reason, "log write failed; the store is now read-only");
                    self.poisoned = Some(reason);
                }
                for (sub, _) in batch.placed {
                    let _ = sub.reply.send(Err(if full {
                        Error::NoSpace
                    } else {
                        Error::Failed(error.to_string())
                    }));
                }
                // What they landed was taken back; their numbers are not
                // handed out again all the same, so that a leftover a crash
                // kept before the take-back never passes for a later record.
                let last = behind.last().map_or(batch.heads, |b| b.heads);
                self.committed.next_lsn = last.next_lsn;
                self.committed.next_sequence = last.next_sequence;
                self.lay_out_again(behind);
            }
        }
    }

    /// The batches `behind` a failed one, and the filling batch, were laid
    /// out after it: their submissions are placed again from the real end
    /// of the log (or refused, once the writer is poisoned).
    fn lay_out_again(&mut self, behind: Vec<Batch>) {
        let stale = std::mem::replace(&mut self.filling, Batch::starting_at(self.committed));
        self.free
            .lock()
            .extend(stale.taken_segments.iter().map(|(s, _)| *s));
        let Batch { runs, placed, .. } = stale;
        for run in runs {
            self.keep_buffer(run.buf);
        }
        let again: Vec<Submission> = behind
            .into_iter()
            .flat_map(|b| b.placed)
            .chain(placed)
            .map(|(sub, _)| sub)
            .collect();
        for sub in again.into_iter().rev() {
            self.waiting.push_front(sub);
        }
        if let Some(reason) = &self.poisoned {
            for sub in self.waiting.drain(..) {
                let _ = sub.reply.send(Err(Error::Failed(reason.clone())));
            }
            return;
        }
        self.fill();
    }

    /// A batch is written: its records take effect in log order, and each
    /// submitter hears back.
    fn publish(&mut self, batch: Batch) {
        let Batch {
            heads,
            taken_segments,
            placed,
            device_bytes,
            ..
        } = batch;
        {
            let free_now = self.free.lock().len();
            let mut stats = self.stats.lock();
            stats.free_segments = free_now;
            stats.compaction_head = self.committed.compaction.map(|h| h.segment);
            stats.batches += 1;
            stats.records += placed
                .iter()
                .map(|(s, _)| s.records.len() as u64)
                .sum::<u64>();
            stats.bytes_written += device_bytes;
        }
        let mut outcomes = Vec::with_capacity(placed.len());
        {
            let mut catalog = self.catalog.write();
            for (segment, header) in &taken_segments {
                catalog.space.note_segment(*segment, header);
            }
            for (sub, locations) in &placed {
                let mut outcome = Ok(());
                let mut versions = Vec::new();
                let mut chunks = Vec::new();
                for (record, (location, lsn)) in sub.records.iter().zip(locations) {
                    match catalog.apply(*lsn, *location, &record.record) {
                        Ok(version) => versions.extend(version),
                        Err(e) if outcome.is_ok() => outcome = Err(e),
                        Err(_) => {}
                    }
                    if matches!(record.record, Record::Chunk { .. }) {
                        chunks.push(*location);
                    }
                }
                let pins = PinGuard::pin(&self.catalog, &mut catalog, chunks);
                outcomes.push((outcome, versions, pins));
            }
            catalog.index.tail = heads.log;
        }
        // A reply nobody waits for any more drops its pins here, after the
        // lock is released.
        for ((sub, locations), (outcome, versions, pins)) in placed.into_iter().zip(outcomes) {
            let _ = sub.reply.send(Ok(Committed {
                locations: locations.into_iter().map(|(l, _)| l).collect(),
                outcome,
                versions,
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
                .heads
                .of(kind)
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
            let Some(head) = *batch.heads.of(kind) else {
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
            let lsn = batch.heads.next_lsn;
            if lsn >= COUNTER_LIMIT {
                return Err(Error::Failed("log sequence numbers exhausted".into()));
            }
            batch.heads.next_lsn += 1;
            let header = RecordHeader {
                kind: record.kind(),
                flags: record.flags,
                payload_len: record.payload.len() as u32,
                lsn,
            };
            header.encode_into(
                &self.superblock.device_uuid,
                &record.payload,
                batch.runs[run].extend(len as usize),
            );
            out.push((
                Location {
                    segment: head.segment,
                    offset: head.offset,
                    len: len as u32,
                },
                lsn,
            ));
            if let Some(head) = batch.heads.of(kind) {
                head.offset += len as u32;
            }
        }
        Ok(out)
    }

    fn open_segment(&mut self, batch: &mut Batch, kind: SegmentKind) -> Result<()> {
        let segment = self.free.lock().pop_first().ok_or(Error::NoSpace)?;
        let sequence = batch.heads.next_sequence;
        if sequence >= COUNTER_LIMIT {
            return Err(Error::Failed("segment sequence numbers exhausted".into()));
        }
        batch.heads.next_sequence += 1;
        let header = SegmentHeader {
            device_uuid: self.superblock.device_uuid,
            sequence,
            first_lsn: batch.heads.next_lsn,
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
        *batch.heads.of(kind) = Some(LogPosition {
            segment,
            sequence,
            offset: SEGMENT_HEADER_BYTES,
        });
        Ok(())
    }

    fn keep_buffer(&mut self, buf: AlignedBuf) {
        if self.spare_buffers.len() < SPARE_BUFFERS {
            self.spare_buffers.push(buf);
        }
    }
}

impl Drop for WriterThread {
    /// The I/O thread holds a sender to its own queue (for the device's
    /// reports), so it is told to end.
    fn drop(&mut self) {
        let _ = self.jobs.send(IoEvent::Stop);
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
            // Doubling, but not past what a batch can hold: a full batch
            // doubled to 16 MiB, and with two batches at the device, one
            // filling and two spare, those buffers alone held 80 MiB.
            let batch = MAX_BATCH_BYTES + SEGMENT_HEADER_BYTES as usize + 2 * BLOCK_SIZE;
            let mut bigger = AlignedBuf::zeroed(needed.max((2 * self.buf.len()).min(batch)));
            bigger[..self.len].copy_from_slice(&self.buf[..self.len]);
            self.buf = bigger;
        }
        let at = self.len;
        self.len += n;
        &mut self.buf[at..at + n]
    }

    /// The buffer as written: the data, then zeros to the block boundary
    /// (not what an earlier batch left in this buffer).
    fn into_padded(self) -> AlignedBuf {
        let Run { mut buf, len, .. } = self;
        let padded = align_up(len as u64) as usize;
        buf[len..padded].fill(0);
        buf.set_len(padded);
        buf
    }
}

impl Batch {
    fn starting_at(heads: Heads) -> Batch {
        Batch {
            heads,
            ..Default::default()
        }
    }

    fn mark(&self) -> Mark {
        Mark {
            run_lens: self.runs.iter().map(|r| r.len).collect(),
            heads: self.heads,
            taken: self.taken_segments.len(),
        }
    }

    fn rewind(&mut self, mark: Mark, free: &mut BTreeSet<u32>) {
        self.runs.truncate(mark.run_lens.len());
        for (run, len) in self.runs.iter_mut().zip(mark.run_lens) {
            run.len = len;
        }
        self.heads = mark.heads;
        for (segment, _) in self.taken_segments.drain(mark.taken..) {
            free.insert(segment);
        }
    }
}
