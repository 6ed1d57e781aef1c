//! Writes of object versions: PUT (with If-Match / If-None-Match, tags and
//! object-lock headers), DELETE (of the current version or of one, with
//! conditions), batch DELETE, and COPY (from any version). Reads are in
//! `reads.rs`.

use std::sync::Arc;

use lsm::{BucketConfig, Condition, DeleteCondition, ETagMatch, ObjectMeta, VersionRef};
use s3s::dto::*;
use s3s::{s3_error, S3Error, S3Request, S3Response, S3Result};

use crate::authz::ClientInfo;
use crate::body::{fill_checksums, ingest, ingest_upload, object_body, ChecksumRequest};
use crate::convert::*;
use crate::encryption::{
    copy_source_customer_headers, fill_sse_all, write_headers, Sealed, SseAnswer,
};
use crate::errors::{read_error, to_s3};
use crate::object_config::{lock_from_headers, tags_from_header};
use crate::service::Strata;

/// S3 caps a batch delete at 1000 keys.
const MAX_DELETE_KEYS: usize = 1000;

/// What a new version starts with besides its headers: its tags and its
/// object-lock retention and legal hold.
pub(crate) fn add_write_extras(
    meta: &mut ObjectMeta,
    config: &BucketConfig,
    tagging: Option<&str>,
    mode: Option<&ObjectLockMode>,
    until: Option<&Timestamp>,
    legal_hold: Option<&ObjectLockLegalHoldStatus>,
) -> S3Result<()> {
    let tags = tags_from_header(tagging)?;
    let (retention, held) =
        lock_from_headers(config.object_lock.is_some(), mode, until, legal_hold)?;
    meta.set_tags(tags);
    meta.set_retention(retention);
    meta.set_legal_hold(held);
    Ok(())
}

/// `x-amz-expiration` for the current version, from the bucket's rules.
pub(crate) fn expiration(
    config: &BucketConfig,
    key: &str,
    entry: &lsm::ObjectEntry,
) -> Option<String> {
    let rules = config.lifecycle.as_deref()?;
    let meta = &entry.meta;
    let (at_ms, rule) =
        lsm::lifecycle::expiry(rules, key, meta.tags(), meta.size, meta.last_modified_ms)?;
    let date = http_date(&timestamp_ms(at_ms))?;
    Some(format!("expiry-date=\"{date}\", rule-id=\"{rule}\""))
}

/// A conditional write refused where it applied. If-Match passed the early
/// check, so a missing key now means a write in flight took it away: AWS
/// answers that race 409 ConditionalRequestConflict.
pub(crate) fn write_error(e: lsm::Error, condition: &Condition) -> S3Error {
    match (e, condition) {
        (lsm::Error::NoSuchKey, Condition::IfMatch(_)) => s3_error!(
            ConditionalRequestConflict,
            "A conflicting operation occurred on this object; retry"
        ),
        (e, _) => to_s3(e),
    }
}

pub(crate) async fn put_object(
    s: &Strata,
    mut req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let store = s.store()?;
    let input = &mut req.input;
    let config = store.bucket_config(&input.bucket).map_err(to_s3)?;
    let sealed = s.sse().seal_for_write(
        req.extensions.get::<ClientInfo>(),
        &write_headers!(input),
        &config,
    )?;
    let condition = write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
    let current = store
        .version(&input.bucket, &input.key, VersionRef::Current)
        .ok();
    precheck(&condition, current.as_deref())?;
    let mut meta = meta_from_headers!(input)?;
    add_write_extras(
        &mut meta,
        &config,
        input.tagging.as_deref(),
        input.object_lock_mode.as_ref(),
        input.object_lock_retain_until_date.as_ref(),
        input.object_lock_legal_hold_status.as_ref(),
    )?;
    meta.set_acl(crate::acl::for_request(
        &config,
        &req.extensions,
        &req.headers,
    )?);
    let body = ingest_upload!(
        &store,
        input,
        req.trailing_headers.clone(),
        s.body_timeout(),
        sealed.as_ref().map(|s| s.key.clone())
    )
    .await?;
    let checksums = body.checksums;
    meta.checksums = checksums.clone();
    meta.etag = Sealed::etag_of(sealed.as_ref(), body.md5_hex);
    meta.set_encryption(sealed.as_ref().map(|s| s.wrapped.clone()));
    let entry = store
        .put_object(
            &input.bucket,
            &input.key,
            meta,
            body.data,
            condition.clone(),
        )
        .await
        .map_err(|e| write_error(e, &condition))?;
    let mut output = PutObjectOutput {
        e_tag: Some(etag(&entry.meta)),
        version_id: written_version(&entry),
        expiration: expiration(&config, &input.key, &entry),
        ..Default::default()
    };
    fill_checksums!(output, checksums);
    fill_sse_all!(output, sealed.map(|s| s.answer()).unwrap_or_default());
    Ok(S3Response::new(output))
}

fn etag_condition(condition: Option<&ETagCondition>) -> Option<ETagMatch> {
    condition.map(|c| match c {
        ETagCondition::Any => ETagMatch::Any,
        ETagCondition::ETag(e) => ETagMatch::Is(e.value().to_string()),
    })
}

/// What a DELETE answers: the marker it made, or the version it removed
/// (a delete marker removed says so).
fn deleted(
    result: Option<&lsm::ObjectEntry>,
    asked: Option<&str>,
    config: &BucketConfig,
) -> (Option<bool>, Option<String>) {
    match result {
        Some(entry) => (
            entry.delete_marker.then_some(true),
            asked
                .map(str::to_string)
                .or_else(|| shown_version(entry, config.versioning)),
        ),
        None => (None, asked.map(str::to_string)),
    }
}

pub(crate) async fn delete_object(
    s: &Strata,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let store = s.store()?;
    let input = &req.input;
    let version = version_ref(input.version_id.as_deref())?;
    let config = store.bucket_config(&input.bucket).map_err(to_s3)?;
    let condition = DeleteCondition {
        etag: etag_condition(input.if_match.as_ref()),
        size: input.if_match_size.map(|n| n.max(0) as u64),
        last_modified_s: input
            .if_match_last_modified_time
            .as_ref()
            .map(|t| timestamp_to_ms(t) / 1000),
        current_lsn: None,
    };
    let bypass = input.bypass_governance_retention.unwrap_or(false);
    let result = store
        .delete(&input.bucket, &input.key, version, bypass, condition)
        .await
        .map_err(to_s3)?;
    let (delete_marker, version_id) =
        deleted(result.as_deref(), input.version_id.as_deref(), &config);
    Ok(S3Response::new(DeleteObjectOutput {
        delete_marker,
        version_id,
        ..Default::default()
    }))
}

pub(crate) async fn delete_objects(
    s: &Strata,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let store = s.store()?;
    let input = &req.input;
    if input.delete.objects.len() > MAX_DELETE_KEYS {
        return Err(s3_error!(
            MalformedXML,
            "at most {MAX_DELETE_KEYS} keys per request"
        ));
    }
    let config = store.bucket_config(&input.bucket).map_err(to_s3)?;
    let bypass = input.bypass_governance_retention.unwrap_or(false);
    let quiet = input.delete.quiet.unwrap_or(false);
    // Each key is authorised as its own DeleteObject would be.
    let caller = crate::authz::caller_of(&req.extensions);
    let context = req
        .extensions
        .get::<policy::Context>()
        .cloned()
        .unwrap_or_default();
    let mut done = Vec::new();
    let mut errors = Vec::new();
    for object in &input.delete.objects {
        let condition = DeleteCondition {
            etag: object
                .e_tag
                .as_ref()
                .map(|e| ETagMatch::Is(e.value().to_string())),
            size: object.size.map(|n| n.max(0) as u64),
            last_modified_s: object
                .last_modified_time
                .as_ref()
                .map(|t| timestamp_to_ms(t) / 1000),
            current_lsn: None,
        };
        let allowed = s.access().authorize(&crate::authz::Ask {
            caller: &caller,
            action: match object.version_id {
                Some(_) => "s3:DeleteObjectVersion",
                None => "s3:DeleteObject",
            },
            bucket: Some(&input.bucket),
            key: Some(&object.key),
            version: object.version_id.as_deref(),
            context: &context,
        });
        let outcome = match allowed.and_then(|()| version_ref(object.version_id.as_deref())) {
            Ok(version) => store
                .delete(&input.bucket, &object.key, version, bypass, condition)
                .await
                .map_err(to_s3),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(result) => {
                if quiet {
                    continue;
                }
                let asked = object.version_id.as_deref();
                let (delete_marker, version_id) = deleted(result.as_deref(), asked, &config);
                // A marker made (no version asked for) is named as such; a
                // marker removed by its id is that id.
                let made_marker = asked.is_none() && delete_marker == Some(true);
                done.push(DeletedObject {
                    key: Some(object.key.clone()),
                    delete_marker,
                    delete_marker_version_id: delete_marker.and(version_id.clone()),
                    version_id: version_id.filter(|_| !made_marker),
                });
            }
            Err(e) => errors.push(Error {
                code: Some(e.code().as_str().to_string()),
                key: Some(object.key.clone()),
                message: e.message().map(str::to_string),
                version_id: object.version_id.clone(),
            }),
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: (!done.is_empty()).then_some(done),
        errors: (!errors.is_empty()).then_some(errors),
        ..Default::default()
    }))
}

/// The bucket, key and version a copy reads.
pub(crate) fn copy_source(source: &CopySource) -> S3Result<(String, String, VersionRef)> {
    match source {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } if !key.is_empty() => Ok((
            bucket.to_string(),
            key.to_string(),
            version_ref(version_id.as_deref())?,
        )),
        _ => Err(s3_error!(InvalidArgument, "unsupported copy source")),
    }
}

/// The version a copy reads, after its x-amz-copy-source-if-* conditions
/// (which answer 412 where GET would answer 304). A delete marker cannot be
/// copied: named by its version id it is InvalidRequest, as the current
/// version it is NoSuchKey.
pub(crate) fn checked_copy_source(
    store: &lsm::Store,
    source: &CopySource,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<Arc<lsm::ObjectEntry>> {
    let (bucket, key, version) = copy_source(source)?;
    let entry = store
        .readable_version(&bucket, &key, version)
        .map_err(|e| match e {
            lsm::Error::DeleteMarker { .. } if version != VersionRef::Current => s3_error!(
                InvalidRequest,
                "The source of a copy request may not specifically refer to a delete marker by version id."
            ),
            other => read_error(other, false),
        })?;
    check_conditions(
        &entry,
        if_match,
        if_none_match,
        if_modified_since,
        if_unmodified_since,
    )
    .map_err(|e| {
        if *e.code() == s3s::S3ErrorCode::NotModified {
            s3_error!(PreconditionFailed)
        } else {
            e
        }
    })?;
    Ok(entry)
}

pub(crate) async fn copy_object(
    s: &Strata,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let store = s.store()?;
    let input = &req.input;
    let (src_bucket, src_key, src_version) = copy_source(&input.copy_source)?;
    let source = checked_copy_source(
        &store,
        &input.copy_source,
        input.copy_source_if_match.as_ref(),
        input.copy_source_if_none_match.as_ref(),
        input.copy_source_if_modified_since.as_ref(),
        input.copy_source_if_unmodified_since.as_ref(),
    )?;
    let config = store.bucket_config(&input.bucket).map_err(to_s3)?;
    let client = req.extensions.get::<ClientInfo>();
    let source_key =
        s.sse()
            .open_for_read(client, &source.meta, &copy_source_customer_headers!(input))?;
    let sealed = s
        .sse()
        .seal_for_write(client, &write_headers!(input), &config)?;
    let condition = write_condition_from_headers(&req.headers)?;
    let current = store
        .version(&input.bucket, &input.key, VersionRef::Current)
        .ok();
    precheck(&condition, current.as_deref())?;
    let replace = input
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
    let replace_tags = input
        .tagging_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == TaggingDirective::REPLACE);
    let same_object = src_bucket == input.bucket && src_key == input.key;
    let asks_encryption =
        input.server_side_encryption.is_some() || input.sse_customer_algorithm.is_some();
    if same_object
        && !replace
        && !replace_tags
        && !asks_encryption
        && src_version == VersionRef::Current
    {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
        ));
    }
    let mut meta = if replace {
        ObjectMeta {
            checksums: source.meta.checksums.clone(),
            ..meta_from_headers!(input)?
        }
    } else {
        ObjectMeta {
            extra: None,
            ..source.meta.clone()
        }
    };
    let tagging = match replace_tags {
        true => input.tagging.clone(),
        false => None,
    };
    add_write_extras(
        &mut meta,
        &config,
        tagging.as_deref(),
        input.object_lock_mode.as_ref(),
        input.object_lock_retain_until_date.as_ref(),
        input.object_lock_legal_hold_status.as_ref(),
    )?;
    meta.set_acl(crate::acl::for_request(
        &config,
        &req.extensions,
        &req.headers,
    )?);
    // What the source carries over: its tags unless replaced, and the
    // layout of its parts and its checksum's kind (they describe its bytes).
    if !replace_tags {
        meta.set_tags(source.meta.tags().to_vec());
    }
    meta.set_checksum_kind(
        source
            .meta
            .checksum_kind()
            .map(|(algorithm, kind)| (algorithm.to_string(), kind)),
    );
    let entry = match s
        .sse()
        .share_for_copy(source_key.as_ref(), sealed.as_ref())?
    {
        Some(wrapped) => {
            // The copy shares the source's chunks (and its data key).
            meta.set_parts(source.meta.parts().to_vec());
            meta.set_encryption(wrapped);
            store
                .copy_object(&source, &input.bucket, &input.key, meta, condition.clone())
                .await
        }
        None => {
            // Another key, or to or from plaintext: decrypted and sealed
            // again, never shared.
            let size = source.meta.size;
            let blob = object_body(&store, &source, 0..size, source_key.map(|s| s.key)).await?;
            let body = ingest(
                &store,
                sealed.as_ref().map(|s| s.key.clone()),
                Some(blob),
                Some(size as i64),
                ChecksumRequest::new(None, None, Default::default(), None),
                size,
                s.body_timeout(),
            )
            .await?;
            meta.etag = Sealed::etag_of(sealed.as_ref(), body.md5_hex);
            meta.set_encryption(sealed.as_ref().map(|s| s.wrapped.clone()));
            store
                .put_object(
                    &input.bucket,
                    &input.key,
                    meta,
                    body.data,
                    condition.clone(),
                )
                .await
        }
    }
    .map_err(|e| write_error(e, &condition))?;
    let source_versioning = store
        .bucket_config(&src_bucket)
        .map(|c| c.versioning)
        .unwrap_or_default();
    let mut output = CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(etag(&entry.meta)),
            last_modified: Some(timestamp_ms(entry.meta.last_modified_ms)),
            ..Default::default()
        }),
        version_id: written_version(&entry),
        copy_source_version_id: shown_version(&source, source_versioning),
        expiration: expiration(&config, &input.key, &entry),
        ..Default::default()
    };
    let md5 = sealed.and_then(|s| s.customer_md5);
    fill_sse_all!(
        output,
        SseAnswer::of(entry.meta.encryption(), md5.as_deref())
    );
    Ok(S3Response::new(output))
}
