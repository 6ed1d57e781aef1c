//! lsm owns the store: the on-disk format, the group-commit log writer, the
//! chunker and dedup, the in-memory index, reads, checkpoints and compaction.
//! It must not know about HTTP (that is s3api) nor rebuild itself from the
//! device (that is recovery); it talks to the device only through blockdev.

mod bucket_config;
pub mod cache;
pub mod checkpoint;
pub mod chunk;
pub mod cipher;
pub mod compactor;
pub mod error;
pub mod expirer;
pub mod format;
pub mod iam;
pub mod index;
pub mod lifecycle;
pub mod listing;
mod multipart;
mod object_lock;
mod object_ops;
mod object_writer;
pub mod reader;
pub mod space;
pub mod store;
pub mod superblock;
mod versions;
pub mod writer;

pub use bucket_config::{owner_full_control, BucketConfig};
pub use checkpoint::CheckpointReport;
pub use chunk::Compression;
pub use compactor::{CompactionPolicy, CompactionTriggers, RoundReport, SpaceReport};
pub use error::{Error, Result};
pub use expirer::{ExpirerConfig, ExpiryReport};
pub use format::{
    parse_version_id, version_id, BucketSetting, ChecksumType, ChunkRef, Condition,
    DefaultRetention, DeleteCondition, ETagMatch, Location, LockMode, MetaItem, ObjectLockConfig,
    ObjectMeta, PartSummary, Retention, VersionChange, VersionRef, VersioningState,
};
pub use iam::{IamState, KeyHolder};
pub use index::{BucketInfo, BucketUsage, Catalog, Index, LogPosition, ObjectEntry, Upload};
pub use listing::{ListPage, ListQuery, ListedVersion, VersionPage, VersionQuery};
pub use object_writer::ObjectWriter;
pub use space::SpaceMap;
pub use store::{now_ms, Store, StoreConfig, StoreStats, WrittenData};
pub use superblock::{format_device, read_superblock, OpenProblem};
pub use writer::{PendingRecord, WriterStart};
