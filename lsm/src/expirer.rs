//! The lifecycle worker: walks every bucket that has rules, a page of keys
//! at a time, and does what `lifecycle.rs` says is due through the store's
//! ordinary operations (delete markers, removals of versions, aborts of
//! uploads). Each is one durable record decided by `Index::apply`, object
//! lock included, so a pass cut short anywhere simply runs again, and a
//! repeated pass does nothing twice: a current version already under a
//! delete marker is not expired again.

use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::{DeleteCondition, VersionRef};
use crate::lifecycle::{due_for_key, upload_due, Due, DAY_MS};
use crate::object_lock::may_remove;
use crate::store::{now_ms, Store};

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct ExpirerConfig {
    /// How long a lifecycle day lasts: a real day, shortened in tests (as
    /// Ceph RGW's debug interval does).
    pub day_ms: u64,
    /// Time between passes.
    pub interval: Duration,
    /// Actions (deletes, aborts) per second at most, so foreground
    /// requests keep the log.
    pub actions_per_s: u32,
}

impl Default for ExpirerConfig {
    fn default() -> Self {
        ExpirerConfig {
            day_ms: DAY_MS,
            interval: Duration::from_secs(60),
            actions_per_s: 1000,
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExpiryReport {
    pub keys_checked: u64,
    pub current_expired: u64,
    pub versions_removed: u64,
    pub uploads_aborted: u64,
    /// Due, but kept by object lock.
    pub locked_kept: u64,
}

/// Keys read under the index lock at a time.
const PAGE_KEYS: usize = 1000;

/// A budget of actions per second.
struct Pace {
    per_s: u32,
    used: u32,
    window: tokio::time::Instant,
}

impl Pace {
    async fn step(&mut self) {
        if self.per_s == 0 {
            return;
        }
        if self.window.elapsed() >= Duration::from_secs(1) {
            self.window = tokio::time::Instant::now();
            self.used = 0;
        }
        self.used += 1;
        if self.used > self.per_s {
            tokio::time::sleep_until(self.window + Duration::from_secs(1)).await;
            self.window = tokio::time::Instant::now();
            self.used = 1;
        }
    }
}

impl Store {
    /// One pass over every bucket with lifecycle rules.
    pub async fn expire_once(&self, config: &ExpirerConfig) -> Result<ExpiryReport> {
        let mut report = ExpiryReport::default();
        let mut pace = Pace {
            per_s: config.actions_per_s,
            used: 0,
            window: tokio::time::Instant::now(),
        };
        let buckets = self.catalog().read().index.lifecycle_buckets();
        for (bucket, rules) in buckets {
            let mut after: Option<String> = None;
            loop {
                let page = match self.catalog().read().index.versions_page(
                    &bucket,
                    after.as_deref(),
                    PAGE_KEYS,
                ) {
                    Ok(page) => page,
                    // The bucket went meanwhile.
                    Err(Error::NoSuchBucket) => break,
                    Err(e) => return Err(e),
                };
                let Some((last, _)) = page.last() else {
                    break;
                };
                after = Some(last.clone());
                let now = now_ms();
                for (key, versions) in &page {
                    report.keys_checked += 1;
                    for due in due_for_key(&rules, key, versions, now, config.day_ms) {
                        let (version, condition) = match due {
                            Due::ExpireCurrent(lsn) => (
                                VersionRef::Current,
                                DeleteCondition {
                                    current_lsn: Some(lsn),
                                    ..Default::default()
                                },
                            ),
                            Due::Remove(lsn) => {
                                let locked = versions
                                    .iter()
                                    .find(|v| v.lsn == lsn)
                                    .is_some_and(|v| may_remove(v, now, false).is_err());
                                if locked {
                                    report.locked_kept += 1;
                                    continue;
                                }
                                (VersionRef::Lsn(lsn), DeleteCondition::default())
                            }
                        };
                        pace.step().await;
                        match self.delete(&bucket, key, version, false, condition).await {
                            Ok(_) if version == VersionRef::Current => report.current_expired += 1,
                            Ok(_) => report.versions_removed += 1,
                            // Changed since it was read, or locked since:
                            // the next pass sees it again.
                            Err(Error::PreconditionFailed | Error::Locked(_)) => {
                                report.locked_kept += u64::from(version != VersionRef::Current)
                            }
                            Err(Error::NoSuchBucket) => break,
                            Err(e) => return Err(e),
                        }
                    }
                }
            }
            let uploads = match self.list_uploads(&bucket, "") {
                Ok(uploads) => uploads,
                Err(Error::NoSuchBucket) => continue,
                Err(e) => return Err(e),
            };
            let now = now_ms();
            for upload in uploads {
                let create = &upload.create;
                if upload_due(&rules, &create.key, create.initiated_ms, now, config.day_ms) {
                    pace.step().await;
                    match self.abort_upload(&create.upload_id).await {
                        Ok(()) => report.uploads_aborted += 1,
                        Err(Error::NoSuchUpload) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(report)
    }

    /// Passes forever, one every `interval`; a failed pass is logged and
    /// the next one tries again.
    pub async fn expire_in_background(&self, config: ExpirerConfig) {
        loop {
            tokio::time::sleep(config.interval).await;
            match self.expire_once(&config).await {
                Ok(r) if r.current_expired + r.versions_removed + r.uploads_aborted > 0 => {
                    tracing::info!(
                        keys = r.keys_checked,
                        expired = r.current_expired,
                        removed = r.versions_removed,
                        aborted = r.uploads_aborted,
                        locked_kept = r.locked_kept,
                        "lifecycle pass"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "lifecycle pass failed"),
            }
        }
    }
}
