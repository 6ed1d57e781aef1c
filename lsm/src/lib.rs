//! lsm owns the store: the on-disk format, the group-commit log writer, the
//! chunker, the in-memory index and reads. It must not know about HTTP (that
//! is s3api) nor rebuild itself from the device (that is recovery); it talks
//! to the device only through blockdev.

pub mod cache;
pub mod chunk;
pub mod error;
pub mod format;
pub mod index;
pub mod reader;
pub mod store;
pub mod superblock;
pub mod writer;

pub use chunk::Compression;
pub use error::{Error, Result};
pub use format::{ChunkRef, Location, ObjectMeta};
pub use index::{BucketInfo, Index, ListPage, ListQuery, LogPosition, ObjectEntry, Upload};
pub use store::{now_ms, ObjectWriter, Store, StoreConfig, StoreStats, WrittenData};
pub use superblock::{format_device, read_superblock, OpenProblem};
pub use writer::{PendingRecord, WriterStart};
