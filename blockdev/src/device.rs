//! The device contract every engine implements, and its errors.

use crate::AlignedBuf;

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("I/O error on {device}: {source}")]
    Io {
        device: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no space left on the device")]
    NoSpace,
    #[error("unaligned access: offset {offset}, length {len} (block size {block_size})")]
    Unaligned {
        offset: u64,
        len: usize,
        block_size: usize,
    },
    #[error("access past the end of the device: offset {offset}, length {len}, size {size}")]
    OutOfRange { offset: u64, len: usize, size: u64 },
    #[error("{path} is in use: {reason}")]
    Busy { path: String, reason: String },
    #[error("cannot open {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("the I/O engine thread has stopped")]
    EngineStopped,
}

impl DeviceError {
    pub(crate) fn io(device: &str, source: std::io::Error) -> Self {
        if source.raw_os_error() == Some(libc::ENOSPC) {
            return DeviceError::NoSpace;
        }
        DeviceError::Io {
            device: device.to_string(),
            source,
        }
    }
}

/// The size of the concurrent writes `start_write` splits a buffer into.
/// Smaller pieces keep the queue deeper while a write drains: 64 MiB puts from one
/// client ran 1,128-1,253 MB/s with 256 KiB pieces against 1,022-1,178 with
/// 1 MiB pieces on a loop device (five alternating rounds).
pub const WRITE_PIECE_BYTES: usize = 256 << 10;

/// Called once with the outcome of `BlockDevice::start_write`: the buffer
/// back, or the error.
pub type WriteDone = Box<dyn FnOnce(Result<AlignedBuf, DeviceError>) + Send>;

/// Which system-call path moves the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoEngine {
    /// io_uring through tokio-uring, on a dedicated thread.
    Uring,
    /// Plain pread/pwrite: works where seccomp blocks io_uring (Docker).
    Psync,
}

impl std::fmt::Display for IoEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IoEngine::Uring => "io_uring",
            IoEngine::Psync => "psync",
        })
    }
}

/// Block-aligned I/O. Buffers move in and out by value so that an io_uring
/// engine can own them while the kernel does.
pub trait BlockDevice: Send + Sync {
    /// Usable bytes, a whole number of blocks.
    fn size_bytes(&self) -> u64;
    /// Fills `buf` from `offset`; both block-aligned.
    fn read_at(&self, buf: AlignedBuf, offset: u64) -> Result<AlignedBuf, DeviceError>;
    /// Writes all of `buf` at `offset`; not durable until `sync`.
    fn write_at(&self, buf: AlignedBuf, offset: u64) -> Result<AlignedBuf, DeviceError>;
    /// Starts writing all of `buf` at `offset` and calls `done` with the
    /// outcome once it is finished, on whichever thread finishes it; not
    /// durable until `sync`. An engine that can keep several writes in
    /// flight sends a large buffer as concurrent writes of
    /// WRITE_PIECE_BYTES and returns at once, because devices are fastest
    /// with a deep queue (one 8 MiB write to a loop device ran at 0.6-0.7 of
    /// eight 1 MiB writes in flight), and the caller can start its next
    /// write before this one drains. Otherwise it writes before returning.
    fn start_write(&self, buf: AlignedBuf, offset: u64, done: WriteDone) {
        done(self.write_at(buf, offset));
    }
    /// Makes every completed write durable (fdatasync).
    fn sync(&self) -> Result<(), DeviceError>;
    /// Gives the range back to the device (BLKDISCARD or punch-hole); it
    /// reads as zeros or stale bytes afterwards, never as an error.
    fn discard(&self, offset: u64, len: u64) -> Result<(), DeviceError>;
    /// Bytes the backing store really holds (a sparse file's allocation).
    fn allocated_bytes(&self) -> Option<u64> {
        None
    }
    /// A short human description: path, kind and engine.
    fn describe(&self) -> String;
}

pub(crate) fn check_range(offset: u64, len: usize, size: u64) -> Result<(), DeviceError> {
    let bs = crate::BLOCK_SIZE;
    if !offset.is_multiple_of(bs as u64) || !len.is_multiple_of(bs) {
        return Err(DeviceError::Unaligned {
            offset,
            len,
            block_size: bs,
        });
    }
    if offset.checked_add(len as u64).is_none_or(|end| end > size) {
        return Err(DeviceError::OutOfRange { offset, len, size });
    }
    Ok(())
}
