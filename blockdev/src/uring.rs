//! The io_uring engine: one dedicated thread runs a tokio-uring runtime (its
//! files are not Send) and serves requests from any thread over a channel;
//! each request runs as its own task, so concurrent callers give queue depth.

use std::os::unix::fs::FileExt;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::device::{check_range, BlockDevice, DeviceError, WriteDone, WRITE_PIECE_BYTES};
use crate::file::DeviceFile;
use crate::AlignedBuf;

type Reply<T> = std_mpsc::SyncSender<Result<T, std::io::Error>>;

enum Request {
    Read(AlignedBuf, u64, Reply<AlignedBuf>),
    Write(AlignedBuf, u64, Reply<AlignedBuf>),
    WritePiece(Piece, u64),
}

/// A buffer being written as concurrent pieces by `start_write`. Whoever
/// drops the last reference to it (the last piece to finish) reports.
struct SplitWrite {
    buf: AlignedBuf,
    path: String,
    /// The first piece's error, if any failed.
    error: parking_lot::Mutex<Option<DeviceError>>,
    done: parking_lot::Mutex<Option<WriteDone>>,
}

impl SplitWrite {
    /// Records one piece's outcome; the last piece to finish reports the
    /// whole write (`Arc::into_inner` gives it to exactly one caller).
    fn piece_done(split: Arc<SplitWrite>, result: Result<(), DeviceError>) {
        if let Err(e) = result {
            split.error.lock().get_or_insert(e);
        }
        if let Some(split) = Arc::into_inner(split) {
            let SplitWrite {
                buf, error, done, ..
            } = split;
            let outcome = match error.into_inner() {
                Some(e) => Err(e),
                None => Ok(buf),
            };
            if let Some(done) = done.into_inner() {
                done(outcome);
            }
        }
    }
}

/// One piece of a `SplitWrite`.
struct Piece {
    split: Arc<SplitWrite>,
    start: usize,
    end: usize,
}

// SAFETY: the Arc keeps the heap allocation alive and unmoved while the
// kernel reads it; the range lies inside the buffer, whose bytes are all
// initialised; writes only read it, so sharing it is sound.
unsafe impl tokio_uring::buf::IoBuf for Piece {
    fn stable_ptr(&self) -> *const u8 {
        self.split.buf[self.start..].as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.end - self.start
    }
    fn bytes_total(&self) -> usize {
        self.end - self.start
    }
}

pub(crate) struct UringDevice {
    dev: DeviceFile,
    /// `None` only while dropping: closing it ends the engine thread.
    requests: Option<mpsc::UnboundedSender<Request>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const RING_ENTRIES: u32 = 256;

impl UringDevice {
    /// Whether this process may create an io_uring (seccomp may forbid it).
    pub fn available() -> bool {
        tokio_uring::Runtime::new(tokio_uring::builder().entries(8)).is_ok()
    }

    pub fn start(dev: DeviceFile) -> Result<Self, DeviceError> {
        let file = dev
            .file
            .try_clone()
            .map_err(|e| DeviceError::io(&dev.path, e))?;
        let (requests, mut inbox) = mpsc::unbounded_channel::<Request>();
        let (started_tx, started_rx) = std_mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("strata-uring".into())
            .spawn(move || {
                let runtime =
                    match tokio_uring::Runtime::new(tokio_uring::builder().entries(RING_ENTRIES)) {
                        Ok(runtime) => runtime,
                        Err(e) => {
                            let _ = started_tx.send(Err(e));
                            return;
                        }
                    };
                let _ = started_tx.send(Ok(()));
                runtime.block_on(async move {
                    let file = std::rc::Rc::new(tokio_uring::fs::File::from_std(file));
                    while let Some(request) = inbox.recv().await {
                        let file = file.clone();
                        tokio_uring::spawn(async move { serve(&file, request).await });
                    }
                });
            })
            .map_err(|e| DeviceError::io("uring thread", e))?;
        match started_rx.recv() {
            Ok(Ok(())) => Ok(UringDevice {
                dev,
                requests: Some(requests),
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(DeviceError::io(&dev.path, e)),
            Err(_) => Err(DeviceError::EngineStopped),
        }
    }

    fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, DeviceError> {
        let (tx, rx) = std_mpsc::sync_channel(1);
        self.requests
            .as_ref()
            .ok_or(DeviceError::EngineStopped)?
            .send(make(tx))
            .map_err(|_| DeviceError::EngineStopped)?;
        match rx.recv() {
            Ok(result) => result.map_err(|e| DeviceError::io(&self.dev.path, e)),
            Err(_) => Err(DeviceError::EngineStopped),
        }
    }
}

impl Drop for UringDevice {
    /// Waits for the engine thread so that its copy of the file (and the
    /// lock on it) is closed when the device is.
    fn drop(&mut self) {
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(file: &tokio_uring::fs::File, request: Request) {
    match request {
        Request::Read(buf, offset, reply) => {
            let (result, buf) = file.read_exact_at(buf, offset).await;
            let _ = reply.send(result.map(|()| buf));
        }
        Request::Write(buf, offset, reply) => {
            let (result, buf) = file.write_all_at(buf, offset).await;
            let _ = reply.send(result.map(|()| buf));
        }
        Request::WritePiece(piece, offset) => {
            let (result, piece) = file.write_all_at(piece, offset).await;
            let result = result.map_err(|e| DeviceError::io(&piece.split.path, e));
            SplitWrite::piece_done(piece.split, result);
        }
    }
}

impl BlockDevice for UringDevice {
    fn size_bytes(&self) -> u64 {
        self.dev.size_bytes
    }

    fn read_at(&self, buf: AlignedBuf, offset: u64) -> Result<AlignedBuf, DeviceError> {
        check_range(offset, buf.len(), self.dev.size_bytes)?;
        self.call(|reply| Request::Read(buf, offset, reply))
    }

    fn write_at(&self, buf: AlignedBuf, offset: u64) -> Result<AlignedBuf, DeviceError> {
        check_range(offset, buf.len(), self.dev.size_bytes)?;
        self.call(|reply| Request::Write(buf, offset, reply))
    }

    fn start_write(&self, buf: AlignedBuf, offset: u64, done: WriteDone) {
        if let Err(e) = check_range(offset, buf.len(), self.dev.size_bytes) {
            return done(Err(e));
        }
        if buf.len() <= WRITE_PIECE_BYTES {
            // One write gains no depth from io_uring: on this thread it
            // saves the hand-off to the engine thread and back, two context
            // switches per small batch.
            let written = self.dev.file.write_all_at(&buf, offset);
            return done(
                written
                    .map(|()| buf)
                    .map_err(|e| DeviceError::io(&self.dev.path, e)),
            );
        }
        let len = buf.len();
        let split = Arc::new(SplitWrite {
            buf,
            path: self.dev.path.clone(),
            error: parking_lot::Mutex::new(None),
            done: parking_lot::Mutex::new(Some(done)),
        });
        for start in (0..len).step_by(WRITE_PIECE_BYTES) {
            let piece = Piece {
                split: split.clone(),
                start,
                end: (start + WRITE_PIECE_BYTES).min(len),
            };
            let request = Request::WritePiece(piece, offset + start as u64);
            let refused = match &self.requests {
                Some(requests) => requests.send(request).err().map(|e| e.0),
                None => Some(request),
            };
            if let Some(Request::WritePiece(piece, _)) = refused {
                SplitWrite::piece_done(piece.split, Err(DeviceError::EngineStopped));
            }
        }
        // This reference is the last only if every piece already finished.
        SplitWrite::piece_done(split, Ok(()));
    }

    /// fdatasync on the calling thread: its caller waits for it anyway, and
    /// io_uring would hand it to a kernel worker thread, two more context
    /// switches per sync on the log's critical path.
    fn sync(&self) -> Result<(), DeviceError> {
        self.dev.sync()
    }

    fn discard(&self, offset: u64, len: u64) -> Result<(), DeviceError> {
        check_range(offset, len as usize, self.dev.size_bytes)?;
        self.dev.discard(offset, len)
    }

    fn allocated_bytes(&self) -> Option<u64> {
        self.dev.allocated_bytes()
    }

    fn describe(&self) -> String {
        format!(
            "{} ({:?}, io_uring, direct={})",
            self.dev.path, self.dev.kind, self.dev.direct
        )
    }
}
