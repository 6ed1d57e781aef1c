//! Bucket settings: versioning, object lock (and its default retention),
//! tags and lifecycle rules. Each PUT is one durable record; whether the
//! bucket's state allows it (no suspending a locked bucket, no lock without
//! versioning) is decided where it applies.

use lsm::lifecycle::{
    Expiration, FilterAnd, LifecycleConfig, LifecycleRule, NoncurrentExpiration, RuleFilter,
};
use lsm::{BucketSetting, DefaultRetention, ObjectLockConfig, VersioningState};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::convert::*;
use crate::errors::{custom, to_s3};
use crate::object_config::{
    checked_tags, lock_mode, lock_mode_name, tags_from_dto, tags_to_dto, MAX_BUCKET_TAGS,
};
use crate::service::Strata;

pub(crate) async fn set(s: &Strata, bucket: &str, setting: BucketSetting) -> S3Result<()> {
    s.store()?
        .configure_bucket(bucket, setting)
        .await
        .map_err(to_s3)
}

pub(crate) fn config(s: &Strata, bucket: &str) -> S3Result<lsm::BucketConfig> {
    s.store()?.bucket_config(bucket).map_err(to_s3)
}

pub(crate) async fn put_versioning(
    s: &Strata,
    req: S3Request<PutBucketVersioningInput>,
) -> S3Result<S3Response<PutBucketVersioningOutput>> {
    let input = &req.input;
    let conf = &input.versioning_configuration;
    if conf
        .mfa_delete
        .as_ref()
        .is_some_and(|m| m.as_str() == MFADelete::ENABLED)
    {
        return Err(s3_error!(NotImplemented, "MFA delete is not supported"));
    }
    let state = match conf.status.as_ref().map(|s| s.as_str()) {
        Some(BucketVersioningStatus::ENABLED) => VersioningState::Enabled,
        Some(BucketVersioningStatus::SUSPENDED) => VersioningState::Suspended,
        _ => return Err(s3_error!(MalformedXML, "Status is Enabled or Suspended")),
    };
    set(s, &input.bucket, BucketSetting::Versioning(state)).await?;
    Ok(S3Response::new(PutBucketVersioningOutput::default()))
}

pub(crate) async fn get_versioning(
    s: &Strata,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let status = match config(s, &req.input.bucket)?.versioning {
        VersioningState::Unversioned => None,
        VersioningState::Enabled => Some(BucketVersioningStatus::ENABLED),
        VersioningState::Suspended => Some(BucketVersioningStatus::SUSPENDED),
    };
    Ok(S3Response::new(GetBucketVersioningOutput {
        status: status.map(BucketVersioningStatus::from_static),
        ..Default::default()
    }))
}

fn invalid_retention_period() -> s3s::S3Error {
    custom(
        "InvalidRetentionPeriod",
        axum::http::StatusCode::BAD_REQUEST,
        "the default retention period must be a positive number of days or years",
    )
}

pub(crate) async fn put_object_lock(
    s: &Strata,
    req: S3Request<PutObjectLockConfigurationInput>,
) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
    let input = &req.input;
    let conf = input
        .object_lock_configuration
        .as_ref()
        .ok_or_else(|| s3_error!(MalformedXML, "no ObjectLockConfiguration"))?;
    if conf.object_lock_enabled.as_ref().map(|e| e.as_str()) != Some(ObjectLockEnabled::ENABLED) {
        return Err(s3_error!(MalformedXML, "ObjectLockEnabled must be Enabled"));
    }
    let default_retention = match conf
        .rule
        .as_ref()
        .and_then(|r| r.default_retention.as_ref())
    {
        None => None,
        Some(d) => {
            let mode = lock_mode(d.mode.as_ref().map_or("", |m| m.as_str()))?;
            let positive = |n: i32| {
                if n > 0 {
                    Ok(n as u32)
                } else {
                    Err(invalid_retention_period())
                }
            };
            let (days, years) = match (d.days, d.years) {
                (Some(days), None) => (Some(positive(days)?), None),
                (None, Some(years)) => (None, Some(positive(years)?)),
                _ => {
                    return Err(s3_error!(
                        MalformedXML,
                        "DefaultRetention takes exactly one of Days and Years"
                    ))
                }
            };
            Some(DefaultRetention { mode, days, years })
        }
    };
    set(
        s,
        &input.bucket,
        BucketSetting::ObjectLock(ObjectLockConfig { default_retention }),
    )
    .await?;
    Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
}

pub(crate) async fn get_object_lock(
    s: &Strata,
    req: S3Request<GetObjectLockConfigurationInput>,
) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
    let Some(lock) = config(s, &req.input.bucket)?.object_lock else {
        return Err(s3_error!(
            ObjectLockConfigurationNotFoundError,
            "Object Lock configuration does not exist for this bucket"
        ));
    };
    let rule = lock.default_retention.map(|d| ObjectLockRule {
        default_retention: Some(s3s::dto::DefaultRetention {
            mode: Some(ObjectLockRetentionMode::from(
                lock_mode_name(d.mode).to_string(),
            )),
            days: d.days.map(|n| n as i32),
            years: d.years.map(|n| n as i32),
        }),
    });
    Ok(S3Response::new(GetObjectLockConfigurationOutput {
        object_lock_configuration: Some(ObjectLockConfiguration {
            object_lock_enabled: Some(ObjectLockEnabled::from_static(ObjectLockEnabled::ENABLED)),
            rule,
        }),
    }))
}

pub(crate) async fn put_tagging(
    s: &Strata,
    req: S3Request<PutBucketTaggingInput>,
) -> S3Result<S3Response<PutBucketTaggingOutput>> {
    let input = &req.input;
    let tags = tags_from_dto(&input.tagging.tag_set, MAX_BUCKET_TAGS)?;
    set(s, &input.bucket, BucketSetting::Tags(Some(tags))).await?;
    Ok(S3Response::new(PutBucketTaggingOutput::default()))
}

pub(crate) async fn get_tagging(
    s: &Strata,
    req: S3Request<GetBucketTaggingInput>,
) -> S3Result<S3Response<GetBucketTaggingOutput>> {
    match config(s, &req.input.bucket)?.tags {
        Some(tags) => Ok(S3Response::new(GetBucketTaggingOutput {
            tag_set: tags_to_dto(&tags),
        })),
        None => Err(s3_error!(NoSuchTagSet, "The TagSet does not exist")),
    }
}

pub(crate) async fn delete_tagging(
    s: &Strata,
    req: S3Request<DeleteBucketTaggingInput>,
) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
    set(s, &req.input.bucket, BucketSetting::Tags(None)).await?;
    Ok(S3Response::new(DeleteBucketTaggingOutput::default()))
}

fn non_negative(n: Option<i64>) -> S3Result<Option<u64>> {
    n.map(|n| {
        u64::try_from(n).map_err(|_| s3_error!(InvalidArgument, "object sizes are not negative"))
    })
    .transpose()
}

fn positive_days(n: Option<i32>, what: &str) -> S3Result<Option<u32>> {
    n.map(|n| {
        u32::try_from(n)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| s3_error!(InvalidArgument, "'{what}' must be a positive integer"))
    })
    .transpose()
}

fn tag_pair(tag: &Tag) -> (String, String) {
    (
        tag.key.clone().unwrap_or_default(),
        tag.value.clone().unwrap_or_default(),
    )
}

/// One rule as S3 sends it, in the store's form (kept close to what was
/// sent, so that a GET gives it back).
fn rule_from_dto(rule: &s3s::dto::LifecycleRule) -> S3Result<LifecycleRule> {
    let enabled = match rule.status.as_str() {
        ExpirationStatus::ENABLED => true,
        ExpirationStatus::DISABLED => false,
        _ => return Err(s3_error!(MalformedXML, "Status is Enabled or Disabled")),
    };
    if rule.transitions.as_ref().is_some_and(|t| !t.is_empty())
        || rule
            .noncurrent_version_transitions
            .as_ref()
            .is_some_and(|t| !t.is_empty())
    {
        return Err(s3_error!(
            InvalidRequest,
            "Strata has one storage class: transition rules cannot be applied"
        ));
    }
    let filter = rule
        .filter
        .as_ref()
        .map(|f| -> S3Result<RuleFilter> {
            Ok(RuleFilter {
                prefix: f.prefix.clone(),
                tag: f.tag.as_ref().map(tag_pair),
                size_greater_than: non_negative(f.object_size_greater_than)?,
                size_less_than: non_negative(f.object_size_less_than)?,
                and: f
                    .and
                    .as_ref()
                    .map(|a| -> S3Result<FilterAnd> {
                        let tags = a.tags.as_ref().map(|t| t.iter().map(tag_pair).collect());
                        Ok(FilterAnd {
                            prefix: a.prefix.clone(),
                            tags: checked_tags(tags.unwrap_or_default(), MAX_BUCKET_TAGS)?,
                            size_greater_than: non_negative(a.object_size_greater_than)?,
                            size_less_than: non_negative(a.object_size_less_than)?,
                        })
                    })
                    .transpose()?,
            })
        })
        .transpose()?;
    let expiration = rule
        .expiration
        .as_ref()
        .map(|e| -> S3Result<Expiration> {
            // Days 0 is refused by `validated`, with S3's message.
            let days = e
                .days
                .map(|d| {
                    u32::try_from(d).map_err(|_| {
                        s3_error!(InvalidArgument, "'Days' must be a positive integer")
                    })
                })
                .transpose()?;
            Ok(Expiration {
                days,
                date_ms: e.date.as_ref().map(timestamp_to_ms),
                expired_object_delete_marker: e.expired_object_delete_marker,
            })
        })
        .transpose()?;
    let noncurrent_expiration = rule
        .noncurrent_version_expiration
        .as_ref()
        .map(|n| -> S3Result<NoncurrentExpiration> {
            Ok(NoncurrentExpiration {
                noncurrent_days: n
                    .noncurrent_days
                    .map(|d| {
                        u32::try_from(d).map_err(|_| {
                            s3_error!(
                                InvalidArgument,
                                "'NoncurrentDays' must be a positive integer"
                            )
                        })
                    })
                    .transpose()?,
                newer_noncurrent_versions: positive_days(
                    n.newer_noncurrent_versions,
                    "NewerNoncurrentVersions",
                )?,
            })
        })
        .transpose()?;
    let abort = rule
        .abort_incomplete_multipart_upload
        .as_ref()
        .and_then(|a| a.days_after_initiation);
    Ok(LifecycleRule {
        id: rule.id.clone().unwrap_or_default(),
        enabled,
        prefix: rule.prefix.clone(),
        filter,
        expiration,
        noncurrent_expiration,
        abort_incomplete_upload_days: abort
            .map(|d| {
                u32::try_from(d).map_err(|_| {
                    s3_error!(
                        InvalidArgument,
                        "'DaysAfterInitiation' must be a positive integer"
                    )
                })
            })
            .transpose()?,
    })
}

fn rule_to_dto(rule: &LifecycleRule) -> s3s::dto::LifecycleRule {
    let tag = |(k, v): &(String, String)| Tag {
        key: Some(k.clone()),
        value: Some(v.clone()),
    };
    s3s::dto::LifecycleRule {
        id: Some(rule.id.clone()),
        status: ExpirationStatus::from_static(if rule.enabled {
            ExpirationStatus::ENABLED
        } else {
            ExpirationStatus::DISABLED
        }),
        prefix: rule.prefix.clone(),
        filter: rule.filter.as_ref().map(|f| LifecycleRuleFilter {
            prefix: f.prefix.clone(),
            tag: f.tag.as_ref().map(tag),
            object_size_greater_than: f.size_greater_than.map(|n| n as i64),
            object_size_less_than: f.size_less_than.map(|n| n as i64),
            and: f.and.as_ref().map(|a| LifecycleRuleAndOperator {
                prefix: a.prefix.clone(),
                tags: (!a.tags.is_empty()).then(|| a.tags.iter().map(tag).collect()),
                object_size_greater_than: a.size_greater_than.map(|n| n as i64),
                object_size_less_than: a.size_less_than.map(|n| n as i64),
            }),
        }),
        expiration: rule.expiration.as_ref().map(|e| LifecycleExpiration {
            days: e.days.map(|d| d as i32),
            date: e.date_ms.map(timestamp_ms),
            expired_object_delete_marker: e.expired_object_delete_marker,
        }),
        noncurrent_version_expiration: rule.noncurrent_expiration.as_ref().map(|n| {
            NoncurrentVersionExpiration {
                noncurrent_days: n.noncurrent_days.map(|d| d as i32),
                newer_noncurrent_versions: n.newer_noncurrent_versions.map(|d| d as i32),
            }
        }),
        abort_incomplete_multipart_upload: rule.abort_incomplete_upload_days.map(|d| {
            AbortIncompleteMultipartUpload {
                days_after_initiation: Some(d as i32),
            }
        }),
        transitions: None,
        noncurrent_version_transitions: None,
    }
}

pub(crate) async fn put_lifecycle(
    s: &Strata,
    req: S3Request<PutBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
    let input = &req.input;
    let rules = input
        .lifecycle_configuration
        .as_ref()
        .map(|c| {
            c.rules
                .iter()
                .map(rule_from_dto)
                .collect::<S3Result<Vec<_>>>()
        })
        .transpose()?
        .unwrap_or_default();
    let config = LifecycleConfig { rules }.validated().map_err(|p| match p {
        lsm::lifecycle::RuleProblem::InvalidArgument(m) => s3_error!(InvalidArgument, "{m}"),
        lsm::lifecycle::RuleProblem::Malformed(m) => s3_error!(MalformedXML, "{m}"),
    })?;
    set(s, &input.bucket, BucketSetting::Lifecycle(Some(config))).await?;
    Ok(S3Response::new(
        PutBucketLifecycleConfigurationOutput::default(),
    ))
}

pub(crate) async fn get_lifecycle(
    s: &Strata,
    req: S3Request<GetBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
    let Some(rules) = config(s, &req.input.bucket)?.lifecycle else {
        return Err(s3_error!(
            NoSuchLifecycleConfiguration,
            "The lifecycle configuration does not exist"
        ));
    };
    Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
        rules: Some(rules.rules.iter().map(rule_to_dto).collect()),
        ..Default::default()
    }))
}

pub(crate) async fn delete_lifecycle(
    s: &Strata,
    req: S3Request<DeleteBucketLifecycleInput>,
) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
    set(s, &req.input.bucket, BucketSetting::Lifecycle(None)).await?;
    Ok(S3Response::new(DeleteBucketLifecycleOutput::default()))
}
