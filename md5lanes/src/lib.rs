//! MD5 for S3 ETags, many uploads at once. MD5 is the costliest digest on
//! the write path (40% of the server's CPU in 256 MiB multipart PUTs, more
//! than SigV4's SHA-256 with SHA-NI), and one message cannot be hashed
//! faster than its chain of dependent steps. Uploads arriving together
//! can: a hashing thread runs up to sixteen of them in the lanes of
//! AVX-512 registers, in lock-step, as MinIO's md5-simd does.
//!
//! Each upload is a `Md5Stream`: its pieces go to the thread in order, and
//! `finish` returns the digest once they are hashed. The bytes queued for
//! the thread have a bound (`QUEUED_BYTES_MAX`); a stream waits for room.
//! Without AVX-512 there are no lanes (`shared()` is `None`) and callers
//! hash on their own thread.

mod kernel;
mod lanes;

pub use kernel::{compress, supported, BLOCK_BYTES, INITIAL_STATE, LANES};
pub use lanes::{Md5Lanes, Md5Stream, QUEUED_BYTES_MAX};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the MD5 lanes thread has stopped")]
    Stopped,
}

/// The process's lanes, started on first use; `None` without AVX-512F.
pub fn shared() -> Option<&'static Md5Lanes> {
    static SHARED: std::sync::OnceLock<Option<Md5Lanes>> = std::sync::OnceLock::new();
    SHARED
        .get_or_init(|| supported().then(Md5Lanes::start).flatten())
        .as_ref()
}
