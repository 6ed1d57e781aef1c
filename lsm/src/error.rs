//! The store's errors: what happened to the data, with its context.

use crate::format::Location;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("device: {0}")]
    Device(#[from] blockdev::DeviceError),
    #[error("corrupt record at segment {}, offset {}: {reason}", .location.segment, .location.offset)]
    Corruption { location: Location, reason: String },
    /// The record at a reference's location is not the chunk it names:
    /// compaction moved it and the segment was reused. The caller looks
    /// the chunk up again by its hash.
    #[error("chunk at segment {}, offset {} has moved", .0.segment, .0.offset)]
    Moved(Location),
    #[error("undecodable record payload: {0}")]
    Decode(String),
    #[error("no space left on the device")]
    NoSpace,
    #[error("the store is read-only after an I/O error: {0}")]
    Failed(String),
    #[error("no such bucket")]
    NoSuchBucket,
    #[error("bucket already exists")]
    BucketExists,
    #[error("bucket is not empty")]
    BucketNotEmpty,
    #[error("no such key")]
    NoSuchKey,
    #[error("no such version")]
    NoSuchVersion,
    /// The version asked for (or the key's newest) is a delete marker.
    #[error("the version is a delete marker")]
    DeleteMarker { lsn: u64, null_version: bool },
    /// Object lock keeps the version: legal hold or retention.
    #[error("object lock: {0}")]
    Locked(String),
    #[error("invalid bucket state: {0}")]
    InvalidBucketState(String),
    #[error("the object's data is damaged (quarantined by fsck --repair: {0})")]
    Quarantined(String),
    #[error("no such upload")]
    NoSuchUpload,
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("invalid part: {0}")]
    InvalidPart(String),
    #[error("parts are not in ascending order")]
    InvalidPartOrder,
    #[error("part {0} is smaller than the 5 MiB minimum")]
    EntityTooSmall(u32),
    #[error("too large: {0}")]
    TooLarge(String),
    #[error("the store is shutting down")]
    ShuttingDown,
    /// An encrypted chunk was read without its object's data key.
    #[error("the data is encrypted and no key was given")]
    Sealed,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Device errors other than a full device poison the writer: after a
    /// failed write or fsync nobody can say what reached the disk.
    pub(crate) fn from_device(e: blockdev::DeviceError) -> Error {
        match e {
            blockdev::DeviceError::NoSpace => Error::NoSpace,
            other => Error::Device(other),
        }
    }
}
