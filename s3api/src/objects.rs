//! Object operations: put (plain and If-None-Match), get and head with
//! ranges, conditions and overrides, delete, batch delete, copy.

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::body::{fill_checksums, ingest_upload, object_body};
use crate::convert::*;
use crate::errors::to_s3;
use crate::service::Strata;

/// S3 caps a batch delete at 1000 keys.
const MAX_DELETE_KEYS: usize = 1000;

pub(crate) async fn put_object(
    s: &Strata,
    mut req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let store = s.store()?;
    let input = &mut req.input;
    if !store.bucket_exists(&input.bucket) {
        return Err(s3_error!(NoSuchBucket));
    }
    let if_absent = match &input.if_none_match {
        Some(ETagCondition::Any) => true,
        Some(_) => {
            return Err(s3_error!(
                NotImplemented,
                "If-None-Match on PUT supports only '*'"
            ))
        }
        None => false,
    };
    if if_absent && store.object(&input.bucket, &input.key).is_ok() {
        return Err(s3_error!(PreconditionFailed));
    }
    let meta = meta_from_headers!(input)?;
    let body = ingest_upload!(&store, input, req.trailing_headers.clone()).await?;
    let checksums = body.checksums;
    let meta = lsm::ObjectMeta {
        checksums: checksums.clone(),
        etag: body.md5_hex,
        ..meta
    };
    let entry = store
        .put_object(&input.bucket, &input.key, meta, body.data, if_absent)
        .await
        .map_err(to_s3)?;
    let mut output = PutObjectOutput {
        e_tag: Some(etag(&entry.meta)),
        ..Default::default()
    };
    fill_checksums!(output, checksums);
    Ok(S3Response::new(output))
}

fn resolve_range(
    range: Option<&Range>,
    size: u64,
) -> S3Result<(std::ops::Range<u64>, Option<String>)> {
    match range {
        None => Ok((0..size, None)),
        Some(_) if size == 0 => Err(s3_error!(InvalidRange)),
        Some(r) => {
            let resolved = r.check(size)?;
            let content_range = format!("bytes {}-{}/{}", resolved.start, resolved.end - 1, size);
            Ok((resolved, Some(content_range)))
        }
    }
}

pub(crate) async fn get_object(
    s: &Strata,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let store = s.store()?;
    let input = &req.input;
    let entry = store
        .readable_object(&input.bucket, &input.key)
        .map_err(to_s3)?;
    check_conditions(
        &entry,
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.if_unmodified_since.as_ref(),
    )?;
    let (range, content_range) = resolve_range(input.range.as_ref(), entry.meta.size)?;
    let body = object_body(&store, &entry, range.clone()).await?;
    let meta = &entry.meta;
    let mut output = GetObjectOutput {
        body: Some(body),
        content_length: Some((range.end - range.start) as i64),
        content_range,
        accept_ranges: Some("bytes".into()),
        e_tag: Some(etag(meta)),
        last_modified: Some(timestamp_ms(meta.last_modified_ms)),
        content_type: Some(
            meta.content_type
                .clone()
                .unwrap_or_else(|| "binary/octet-stream".into()),
        ),
        content_encoding: meta.content_encoding.clone(),
        cache_control: meta.cache_control.clone(),
        content_disposition: meta.content_disposition.clone(),
        content_language: meta.content_language.clone(),
        expires: meta.expires.as_deref().and_then(parse_http_date),
        metadata: metadata_out(meta),
        ..Default::default()
    };
    if input
        .checksum_mode
        .as_ref()
        .is_some_and(|m| m.as_str() == ChecksumMode::ENABLED)
        && input.range.is_none()
    {
        fill_checksums!(output, meta.checksums.clone());
    }
    Ok(S3Response::new(output))
}

pub(crate) async fn head_object(
    s: &Strata,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let store = s.store()?;
    let input = &req.input;
    let entry = store
        .readable_object(&input.bucket, &input.key)
        .map_err(to_s3)?;
    check_conditions(
        &entry,
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.if_unmodified_since.as_ref(),
    )?;
    let (range, content_range) = resolve_range(input.range.as_ref(), entry.meta.size)?;
    let meta = &entry.meta;
    let mut output = HeadObjectOutput {
        content_length: Some((range.end - range.start) as i64),
        content_range,
        accept_ranges: Some("bytes".into()),
        e_tag: Some(etag(meta)),
        last_modified: Some(timestamp_ms(meta.last_modified_ms)),
        content_type: Some(
            input
                .response_content_type
                .clone()
                .or_else(|| meta.content_type.clone())
                .unwrap_or_else(|| "binary/octet-stream".into()),
        ),
        content_encoding: input
            .response_content_encoding
            .clone()
            .or_else(|| meta.content_encoding.clone()),
        cache_control: input
            .response_cache_control
            .clone()
            .or_else(|| meta.cache_control.clone()),
        content_disposition: input
            .response_content_disposition
            .clone()
            .or_else(|| meta.content_disposition.clone()),
        content_language: input
            .response_content_language
            .clone()
            .or_else(|| meta.content_language.clone()),
        expires: input
            .response_expires
            .clone()
            .or_else(|| meta.expires.as_deref().and_then(parse_http_date)),
        metadata: metadata_out(meta),
        ..Default::default()
    };
    if input
        .checksum_mode
        .as_ref()
        .is_some_and(|m| m.as_str() == ChecksumMode::ENABLED)
    {
        fill_checksums!(output, meta.checksums.clone());
    }
    Ok(S3Response::new(output))
}

pub(crate) async fn delete_object(
    s: &Strata,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let store = s.store()?;
    store
        .delete_object(&req.input.bucket, &req.input.key)
        .await
        .map_err(to_s3)?;
    Ok(S3Response::new(DeleteObjectOutput::default()))
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
    if !store.bucket_exists(&input.bucket) {
        return Err(s3_error!(NoSuchBucket));
    }
    let quiet = input.delete.quiet.unwrap_or(false);
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for object in &input.delete.objects {
        match store.delete_object(&input.bucket, &object.key).await {
            Ok(()) => {
                if !quiet {
                    deleted.push(DeletedObject {
                        key: Some(object.key.clone()),
                        ..Default::default()
                    });
                }
            }
            Err(e) => {
                let e = to_s3(e);
                errors.push(Error {
                    code: Some(e.code().as_str().to_string()),
                    key: Some(object.key.clone()),
                    message: e.message().map(str::to_string),
                    version_id: None,
                });
            }
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: (!errors.is_empty()).then_some(errors),
        ..Default::default()
    }))
}

pub(crate) fn copy_source(source: &CopySource) -> S3Result<(String, String)> {
    match source {
        CopySource::Bucket {
            bucket,
            key,
            version_id: None,
        } if !key.is_empty() => Ok((bucket.to_string(), key.to_string())),
        CopySource::Bucket {
            version_id: Some(_),
            ..
        } => Err(s3_error!(
            NotImplemented,
            "versioned copy sources are not supported"
        )),
        _ => Err(s3_error!(InvalidArgument, "unsupported copy source")),
    }
}

/// The object a copy reads, after its x-amz-copy-source-if-* conditions
/// (which answer 412 where GET would answer 304).
pub(crate) fn checked_copy_source(
    store: &lsm::Store,
    source: &CopySource,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<std::sync::Arc<lsm::ObjectEntry>> {
    let (bucket, key) = copy_source(source)?;
    let entry = store.readable_object(&bucket, &key).map_err(to_s3)?;
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
    let (src_bucket, src_key) = copy_source(&input.copy_source)?;
    let source = checked_copy_source(
        &store,
        &input.copy_source,
        input.copy_source_if_match.as_ref(),
        input.copy_source_if_none_match.as_ref(),
        input.copy_source_if_modified_since.as_ref(),
        input.copy_source_if_unmodified_since.as_ref(),
    )?;
    let replace = input
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
    if !replace && src_bucket == input.bucket && src_key == input.key {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata."
        ));
    }
    let meta = if replace {
        lsm::ObjectMeta {
            checksums: source.meta.checksums.clone(),
            ..meta_from_headers!(input)?
        }
    } else {
        source.meta.clone()
    };
    let entry = store
        .copy_object(&source, &input.bucket, &input.key, meta)
        .await
        .map_err(to_s3)?;
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(etag(&entry.meta)),
            last_modified: Some(timestamp_ms(entry.meta.last_modified_ms)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}
