//! A bucket's settings, as the index keeps and checkpoints them; each
//! changes by one `BucketConfig` record (or is given at create).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::{
    BucketEncryption, BucketSetting, CorsRule, Grant, Grantee, ObjectLockConfig, ObjectOwnership,
    Permission, PublicAccessBlock, VersioningState, FIRST_ACCOUNT_ID,
};
use crate::lifecycle::LifecycleConfig;

/// What every bucket and object starts with: its owner's full control.
pub fn owner_full_control(owner: &str) -> Grant {
    Grant {
        grantee: Grantee::Account(owner.to_string()),
        permission: Permission::FullControl,
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BucketConfig {
    pub versioning: VersioningState,
    /// Present once object lock is on (it never goes off).
    pub object_lock: Option<ObjectLockConfig>,
    pub tags: Option<Vec<(String, String)>>,
    pub lifecycle: Option<Arc<LifecycleConfig>>,
    /// The owning account; None for buckets made before format 7, which
    /// belong to the first account.
    pub owner: Option<String>,
    pub policy: Option<Arc<str>>,
    /// The grants exactly as set; None until an ACL is set, which means
    /// the owner's full control alone.
    pub acl: Option<Vec<Grant>>,
    pub cors: Option<Arc<Vec<CorsRule>>>,
    pub ownership: Option<ObjectOwnership>,
    pub public_access_block: Option<PublicAccessBlock>,
    /// Format 8: the default encryption of writes without SSE headers.
    pub encryption: Option<BucketEncryption>,
}

impl BucketConfig {
    pub fn owner(&self) -> &str {
        self.owner.as_deref().unwrap_or(FIRST_ACCOUNT_ID)
    }

    /// The bucket's grants as S3 shows them: as set, or the owner's full
    /// control alone.
    pub fn grants(&self) -> Vec<Grant> {
        match &self.acl {
            Some(grants) => grants.clone(),
            None => vec![owner_full_control(self.owner())],
        }
    }

    /// Changes one setting, if the bucket's state allows it.
    pub(crate) fn set(&mut self, setting: &BucketSetting) -> Result<()> {
        let config = self;
        match setting {
            BucketSetting::Versioning(state) => {
                if *state != VersioningState::Enabled && config.object_lock.is_some() {
                    return Err(Error::InvalidBucketState(
                        "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed".into(),
                    ));
                }
                if *state == VersioningState::Unversioned {
                    return Err(Error::InvalidBucketState(
                        "versioning can be enabled or suspended, never removed".into(),
                    ));
                }
                config.versioning = *state;
            }
            BucketSetting::ObjectLock(lock) => {
                if config.versioning != VersioningState::Enabled {
                    return Err(Error::InvalidBucketState(
                        "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration".into(),
                    ));
                }
                config.object_lock = Some(lock.clone());
            }
            BucketSetting::Tags(tags) => config.tags = tags.clone(),
            BucketSetting::Lifecycle(rules) => config.lifecycle = rules.clone().map(Arc::new),
            BucketSetting::Owner(account) => config.owner = Some(account.clone()),
            BucketSetting::Policy(policy) => config.policy = policy.as_deref().map(Arc::from),
            BucketSetting::Acl(grants) => config.acl = Some(grants.clone()),
            BucketSetting::Cors(rules) => config.cors = rules.clone().map(Arc::new),
            BucketSetting::Ownership(ownership) => config.ownership = *ownership,
            BucketSetting::PublicAccessBlock(block) => config.public_access_block = *block,
            BucketSetting::Encryption(default) => config.encryption = default.clone(),
        }
        Ok(())
    }
}
