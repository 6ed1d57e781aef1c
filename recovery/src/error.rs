//! Why recovery or a checkpoint failed.

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("device: {0}")]
    Device(#[from] blockdev::DeviceError),
    #[error(transparent)]
    Open(#[from] lsm::OpenProblem),
    #[error("store: {0}")]
    Store(#[from] lsm::Error),
    #[error("checkpoint does not match the log: {0}")]
    CheckpointMismatch(String),
    #[error("checkpoint is unreadable: {0}")]
    CheckpointUnreadable(String),
    #[error("log counters are out of range (next lsn {next_lsn}, next segment sequence {next_segment_sequence}); the device is damaged")]
    CountersExhausted {
        next_lsn: u64,
        next_segment_sequence: u64,
    },
}
