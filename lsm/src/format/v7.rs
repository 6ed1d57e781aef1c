//! The version 7 checkpoint: the index as it was serialised then, before
//! buckets had a default encryption. Version 7's records need nothing
//! here: format 8 only added variants at the end of enums they use.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use super::{
    CorsRule, Grant, ObjectLockConfig, ObjectOwnership, PublicAccessBlock, VersioningState,
};
use crate::error::{Error, Result};
use crate::iam::IamState;
use crate::index::{Bucket, BucketConfig, Index, LogPosition, Upload};
use crate::lifecycle::LifecycleConfig;
use crate::versions::Versions;

#[derive(Deserialize)]
struct IndexV7 {
    buckets: BTreeMap<String, BucketV7>,
    uploads: BTreeMap<String, Arc<Upload>>,
    applied_lsn: u64,
    tail: Option<LogPosition>,
    iam: IamState,
}

#[derive(Deserialize)]
struct BucketV7 {
    created_ms: u64,
    config: BucketConfigV7,
    objects: BTreeMap<String, Versions>,
}

#[derive(Deserialize)]
struct BucketConfigV7 {
    versioning: VersioningState,
    object_lock: Option<ObjectLockConfig>,
    tags: Option<Vec<(String, String)>>,
    lifecycle: Option<Arc<LifecycleConfig>>,
    owner: Option<String>,
    policy: Option<Arc<str>>,
    acl: Option<Vec<Grant>>,
    cors: Option<Arc<Vec<CorsRule>>>,
    ownership: Option<ObjectOwnership>,
    public_access_block: Option<PublicAccessBlock>,
}

/// A version 7 checkpoint's index (bincode, after zstd), in the current
/// form: no bucket has a default encryption.
pub fn decode_index(encoded: &[u8]) -> Result<Index> {
    let old: IndexV7 = bincode::deserialize(encoded).map_err(|e| Error::Decode(e.to_string()))?;
    let buckets = old
        .buckets
        .into_iter()
        .map(|(name, b)| {
            let c = b.config;
            let config = BucketConfig {
                versioning: c.versioning,
                object_lock: c.object_lock,
                tags: c.tags,
                lifecycle: c.lifecycle,
                owner: c.owner,
                policy: c.policy,
                acl: c.acl,
                cors: c.cors,
                ownership: c.ownership,
                public_access_block: c.public_access_block,
                encryption: None,
            };
            let bucket = Bucket::new(b.created_ms, config, b.objects);
            (name, bucket)
        })
        .collect();
    let mut index = Index::from_parts(buckets, old.uploads, old.applied_lsn, old.tail);
    index.iam = old.iam;
    Ok(index)
}
