//! What a version carries besides its bytes and its headers: tags, an
//! object-lock retention and a legal hold. The handlers for their own
//! operations, and the parsing shared with PUT, CreateMultipartUpload and
//! CopyObject (the x-amz-tagging and x-amz-object-lock-* headers).

use lsm::{LockMode, Retention, VersionChange, VersionRef};
use s3s::dto::*;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use crate::convert::*;
use crate::errors::to_s3;
use crate::service::Strata;

/// S3's limits: 10 tags on an object, 50 on a bucket; keys of 128
/// characters, values of 256.
pub(crate) const MAX_OBJECT_TAGS: usize = 10;
pub(crate) const MAX_BUCKET_TAGS: usize = 50;

fn invalid_tag(message: &str) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidTag, message.to_string())
}

/// Tags checked against S3's limits, sorted by key.
pub(crate) fn checked_tags(
    mut tags: Vec<(String, String)>,
    max: usize,
) -> S3Result<Vec<(String, String)>> {
    if tags.len() > max {
        return Err(invalid_tag(&format!("at most {max} tags are allowed")));
    }
    for (k, v) in &tags {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(invalid_tag("a tag key must be 1 to 128 characters"));
        }
        if v.chars().count() > 256 {
            return Err(invalid_tag("a tag value must be at most 256 characters"));
        }
    }
    tags.sort();
    if tags.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(invalid_tag("tag keys must be unique"));
    }
    Ok(tags)
}

/// `x-amz-tagging: k1=v1&k2` (URL-encoded; a key without `=` has an
/// empty value).
pub(crate) fn tags_from_header(header: Option<&str>) -> S3Result<Vec<(String, String)>> {
    let Some(header) = header.filter(|h| !h.is_empty()) else {
        return Ok(Vec::new());
    };
    let decode = |s: &str| {
        urlencoding_decode(s).ok_or_else(|| invalid_tag("the tag header is not URL-encoded"))
    };
    let tags = header
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect::<S3Result<Vec<_>>>()?;
    checked_tags(tags, MAX_OBJECT_TAGS)
}

/// Percent-decoding of a query component ('+' is a space).
pub(crate) fn urlencoding_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

pub(crate) fn tags_from_dto(set: &TagSet, max: usize) -> S3Result<Vec<(String, String)>> {
    let tags = set
        .iter()
        .map(|t| {
            (
                t.key.clone().unwrap_or_default(),
                t.value.clone().unwrap_or_default(),
            )
        })
        .collect();
    checked_tags(tags, max)
}

pub(crate) fn tags_to_dto(tags: &[(String, String)]) -> TagSet {
    tags.iter()
        .map(|(k, v)| Tag {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}

/// A retention mode as S3 spells it; anything else is malformed.
pub(crate) fn lock_mode(mode: &str) -> S3Result<LockMode> {
    match mode {
        "GOVERNANCE" => Ok(LockMode::Governance),
        "COMPLIANCE" => Ok(LockMode::Compliance),
        _ => Err(s3_error!(MalformedXML, "unknown object lock mode {mode}")),
    }
}

pub(crate) fn lock_mode_name(mode: LockMode) -> &'static str {
    match mode {
        LockMode::Governance => "GOVERNANCE",
        LockMode::Compliance => "COMPLIANCE",
    }
}

fn legal_hold_on(status: &str) -> S3Result<bool> {
    match status {
        "ON" => Ok(true),
        "OFF" => Ok(false),
        _ => Err(s3_error!(MalformedXML, "a legal hold is ON or OFF")),
    }
}

/// The object-lock headers of a write (PUT, CreateMultipartUpload, copy):
/// the retention and legal hold its version starts with. They need object
/// lock on the bucket, and a mode and a date together.
pub(crate) fn lock_from_headers(
    locking: bool,
    mode: Option<&ObjectLockMode>,
    until: Option<&Timestamp>,
    legal_hold: Option<&ObjectLockLegalHoldStatus>,
) -> S3Result<(Option<Retention>, bool)> {
    if (mode.is_some() || until.is_some() || legal_hold.is_some()) && !locking {
        return Err(s3_error!(
            InvalidRequest,
            "Bucket is missing Object Lock Configuration"
        ));
    }
    let retention = match (mode, until) {
        (None, None) => None,
        (Some(mode), Some(until)) => {
            let until_ms = timestamp_to_ms(until);
            if until_ms <= lsm::now_ms() {
                return Err(s3_error!(
                    InvalidArgument,
                    "The retain until date must be in the future"
                ));
            }
            let mode = lock_mode(mode.as_str()).map_err(|_| {
                s3_error!(
                    InvalidArgument,
                    "unknown object lock mode {}",
                    mode.as_str()
                )
            })?;
            Some(Retention { mode, until_ms })
        }
        _ => {
            return Err(s3_error!(
            InvalidArgument,
            "x-amz-object-lock-mode and x-amz-object-lock-retain-until-date must both be supplied"
        ))
        }
    };
    let held = legal_hold
        .map(|s| legal_hold_on(s.as_str()))
        .transpose()
        .map_err(|_| s3_error!(InvalidArgument, "x-amz-object-lock-legal-hold is ON or OFF"))?;
    Ok((retention, held.unwrap_or(false)))
}

/// Retention and legal hold need object lock on the bucket.
fn require_lock(s: &Strata, bucket: &str) -> S3Result<()> {
    let config = s.store()?.bucket_config(bucket).map_err(to_s3)?;
    match config.object_lock {
        Some(_) => Ok(()),
        None => Err(s3_error!(
            InvalidRequest,
            "Bucket is missing Object Lock Configuration"
        )),
    }
}

async fn change(
    s: &Strata,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    change: VersionChange,
) -> S3Result<lsm::ObjectEntry> {
    let version = version_ref(version_id)?;
    s.store()?
        .update_version(bucket, key, version, change)
        .await
        .map(|e| (*e).clone())
        .map_err(|e| version_error(e, version))
}

/// A change or read of one version: a delete marker cannot carry tags or
/// locks (405), a missing version is NoSuchVersion.
fn version_error(e: lsm::Error, version: VersionRef) -> S3Error {
    match e {
        lsm::Error::DeleteMarker { .. } => s3_error!(
            MethodNotAllowed,
            "The specified method is not allowed against a delete marker"
        ),
        lsm::Error::NoSuchKey if version != VersionRef::Current => s3_error!(NoSuchVersion),
        other => to_s3(other),
    }
}

fn readable(
    s: &Strata,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> S3Result<std::sync::Arc<lsm::ObjectEntry>> {
    let version = version_ref(version_id)?;
    let entry = s
        .store()?
        .version(bucket, key, version)
        .map_err(|e| version_error(e, version))?;
    if entry.delete_marker {
        return Err(version_error(
            lsm::Error::DeleteMarker {
                lsn: entry.lsn,
                null_version: entry.null_version,
            },
            version,
        ));
    }
    Ok(entry)
}

pub(crate) async fn put_tagging(
    s: &Strata,
    req: S3Request<PutObjectTaggingInput>,
) -> S3Result<S3Response<PutObjectTaggingOutput>> {
    let input = &req.input;
    let tags = tags_from_dto(&input.tagging.tag_set, MAX_OBJECT_TAGS)?;
    let entry = change(
        s,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
        VersionChange::Tags(tags),
    )
    .await?;
    Ok(S3Response::new(PutObjectTaggingOutput {
        version_id: written_version(&entry),
    }))
}

pub(crate) async fn get_tagging(
    s: &Strata,
    req: S3Request<GetObjectTaggingInput>,
) -> S3Result<S3Response<GetObjectTaggingOutput>> {
    let input = &req.input;
    let entry = readable(s, &input.bucket, &input.key, input.version_id.as_deref())?;
    Ok(S3Response::new(GetObjectTaggingOutput {
        tag_set: tags_to_dto(entry.meta.tags()),
        version_id: written_version(&entry),
    }))
}

pub(crate) async fn delete_tagging(
    s: &Strata,
    req: S3Request<DeleteObjectTaggingInput>,
) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
    let input = &req.input;
    let entry = change(
        s,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
        VersionChange::Tags(Vec::new()),
    )
    .await?;
    Ok(S3Response::new(DeleteObjectTaggingOutput {
        version_id: written_version(&entry),
    }))
}

pub(crate) async fn put_retention(
    s: &Strata,
    req: S3Request<PutObjectRetentionInput>,
) -> S3Result<S3Response<PutObjectRetentionOutput>> {
    let input = &req.input;
    require_lock(s, &input.bucket)?;
    let retention = match &input.retention {
        Some(ObjectLockRetention {
            mode: Some(mode),
            retain_until_date: Some(until),
        }) => Some(Retention {
            mode: lock_mode(mode.as_str())?,
            until_ms: timestamp_to_ms(until),
        }),
        Some(ObjectLockRetention {
            mode: None,
            retain_until_date: None,
        }) => None,
        _ => {
            return Err(s3_error!(
                MalformedXML,
                "a retention needs a Mode and a RetainUntilDate"
            ))
        }
    };
    let bypass = input.bypass_governance_retention.unwrap_or(false);
    change(
        s,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
        VersionChange::Retention {
            retention,
            bypass_governance: bypass,
        },
    )
    .await?;
    Ok(S3Response::new(PutObjectRetentionOutput::default()))
}

pub(crate) async fn get_retention(
    s: &Strata,
    req: S3Request<GetObjectRetentionInput>,
) -> S3Result<S3Response<GetObjectRetentionOutput>> {
    let input = &req.input;
    require_lock(s, &input.bucket)?;
    let entry = readable(s, &input.bucket, &input.key, input.version_id.as_deref())?;
    let Some(retention) = entry.meta.retention() else {
        return Err(crate::errors::custom(
            "NoSuchObjectLockConfiguration",
            axum::http::StatusCode::NOT_FOUND,
            "The specified object does not have a ObjectLock configuration",
        ));
    };
    Ok(S3Response::new(GetObjectRetentionOutput {
        retention: Some(ObjectLockRetention {
            mode: Some(ObjectLockRetentionMode::from(
                lock_mode_name(retention.mode).to_string(),
            )),
            retain_until_date: Some(timestamp_ms(retention.until_ms)),
        }),
    }))
}

pub(crate) async fn put_legal_hold(
    s: &Strata,
    req: S3Request<PutObjectLegalHoldInput>,
) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
    let input = &req.input;
    require_lock(s, &input.bucket)?;
    let status = input
        .legal_hold
        .as_ref()
        .and_then(|h| h.status.as_ref())
        .ok_or_else(|| s3_error!(MalformedXML, "a legal hold needs a Status"))?;
    let on = legal_hold_on(status.as_str())?;
    change(
        s,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
        VersionChange::LegalHold(on),
    )
    .await?;
    Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
}

pub(crate) async fn get_legal_hold(
    s: &Strata,
    req: S3Request<GetObjectLegalHoldInput>,
) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
    let input = &req.input;
    require_lock(s, &input.bucket)?;
    let entry = readable(s, &input.bucket, &input.key, input.version_id.as_deref())?;
    let status = if entry.meta.legal_hold() { "ON" } else { "OFF" };
    Ok(S3Response::new(GetObjectLegalHoldOutput {
        legal_hold: Some(ObjectLockLegalHold {
            status: Some(ObjectLockLegalHoldStatus::from(status.to_string())),
        }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_headers_decode_sort_and_refuse_what_s3_refuses() {
        assert_eq!(
            tags_from_header(Some("foo=bar&bar")).unwrap(),
            vec![
                ("bar".to_string(), String::new()),
                ("foo".to_string(), "bar".to_string())
            ]
        );
        assert_eq!(
            tags_from_header(Some("a%20b=c+d")).unwrap(),
            vec![("a b".to_string(), "c d".to_string())]
        );
        let eleven = (0..11)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join("&");
        assert!(tags_from_header(Some(&eleven)).is_err());
        let long_key = format!("{}=v", "k".repeat(129));
        assert!(tags_from_header(Some(&long_key)).is_err());
        let long_value = format!("k={}", "v".repeat(257));
        assert!(tags_from_header(Some(&long_value)).is_err());
        assert!(tags_from_header(Some("k=1&k=2")).is_err());
        assert!(tags_from_header(Some("k=%zz")).is_err());
        assert!(tags_from_header(None).unwrap().is_empty());
    }
}
