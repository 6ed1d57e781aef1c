//! lsm owns the store: the on-disk format, the group-commit log writer, the
//! chunker and dedup, the in-memory index, reads, checkpoints and compaction.
//! It must not know about HTTP (that is s3api) nor rebuild itself from the
//! device (that is recovery); it talks to the device only through blockdev.

pub mod cache;
pub mod checkpoint;
pub mod chunk;
pub mod compactor;
pub mod error;
pub mod format;
pub mod index;
pub mod reader;
pub mod space;
pub mod store;
pub mod superblock;
pub mod writer;

pub use checkpoint::CheckpointReport;
pub use chunk::Compression;
pub use compactor::{CompactionPolicy, CompactionTriggers, RoundReport, SpaceReport};
pub use error::{Error, Result};
pub use format::{ChunkRef, Location, ObjectMeta};
pub use index::{
    BucketInfo, Catalog, Index, ListPage, ListQuery, LogPosition, ObjectEntry, Upload,
};
pub use space::SpaceMap;
pub use store::{now_ms, ObjectWriter, Store, StoreConfig, StoreStats, WrittenData};
pub use superblock::{format_device, read_superblock, OpenProblem};
pub use writer::{PendingRecord, WriterStart};
