//! The version 6 checkpoint: the index as it was serialised then, before
//! buckets had owners and access settings and before accounts existed.
//! Version 6's records need nothing here: format 7 only added variants
//! at the end of enums they use, which bincode decodes as before.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use super::{ObjectLockConfig, VersioningState};
use crate::error::{Error, Result};
use crate::index::{Bucket, BucketConfig, Index, LogPosition, Upload};
use crate::lifecycle::LifecycleConfig;
use crate::versions::Versions;

#[derive(Deserialize)]
struct IndexV6 {
    buckets: BTreeMap<String, BucketV6>,
    uploads: BTreeMap<String, Arc<Upload>>,
    applied_lsn: u64,
    tail: Option<LogPosition>,
}

#[derive(Deserialize)]
struct BucketV6 {
    created_ms: u64,
    config: BucketConfigV6,
    objects: BTreeMap<String, Versions>,
}

#[derive(Deserialize)]
struct BucketConfigV6 {
    versioning: VersioningState,
    object_lock: Option<ObjectLockConfig>,
    tags: Option<Vec<(String, String)>>,
    lifecycle: Option<Arc<LifecycleConfig>>,
}

/// A version 6 checkpoint's index (bincode, after zstd), in the current
/// form: every bucket the first account's, with no access settings.
pub fn decode_index(encoded: &[u8]) -> Result<Index> {
    let old: IndexV6 = bincode::deserialize(encoded).map_err(|e| Error::Decode(e.to_string()))?;
    let buckets = old
        .buckets
        .into_iter()
        .map(|(name, b)| {
            let config = BucketConfig {
                versioning: b.config.versioning,
                object_lock: b.config.object_lock,
                tags: b.config.tags,
                lifecycle: b.config.lifecycle,
                ..BucketConfig::default()
            };
            let bucket = Bucket::new(b.created_ms, config, b.objects);
            (name, bucket)
        })
        .collect();
    Ok(Index::from_parts(
        buckets,
        old.uploads,
        old.applied_lsn,
        old.tail,
    ))
}
