//! Multipart uploads: create (with tags, object lock and a checksum
//! algorithm), upload (and copy) parts, complete by linking the parts'
//! chunks (with If-Match / If-None-Match, and the object's checksum made
//! from the parts'), abort, and the two listings.

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::authz::ClientInfo;
use crate::body::{
    fill_checksums, ingest, object_body, sent_checksums, ChecksumRequest, MAX_PUT_BYTES,
};
use crate::checksums::{algorithm_name, object_checksum, upload_checksum_type};
use crate::convert::*;
use crate::encryption::{
    copy_source_customer_headers, customer_headers, fill_sse, fill_sse_all, write_headers, Sealed,
};
use crate::errors::to_s3;
use crate::objects::{add_write_extras, checked_copy_source, expiration, write_error};
use crate::service::Strata;

const MAX_PART_NUMBER: i32 = 10_000;

fn check_part_number(n: i32) -> S3Result<u32> {
    if (1..=MAX_PART_NUMBER).contains(&n) {
        Ok(n as u32)
    } else {
        Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and {MAX_PART_NUMBER}"
        ))
    }
}

/// The upload must exist and belong to this bucket and key.
fn upload_for(
    s: &Strata,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> S3Result<std::sync::Arc<lsm::Upload>> {
    let upload = s.store()?.upload(upload_id).map_err(to_s3)?;
    if upload.create.bucket != bucket || upload.create.key != key {
        return Err(s3_error!(NoSuchUpload));
    }
    Ok(upload)
}

pub(crate) async fn create(
    s: &Strata,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let store = s.store()?;
    let input = &req.input;
    let config = store.bucket_config(&input.bucket).map_err(to_s3)?;
    // The upload's data key is made now: every part is sealed under it.
    let sealed = s.sse().seal_for_write(
        req.extensions.get::<ClientInfo>(),
        &write_headers!(input),
        &config,
    )?;
    let mut meta = meta_from_headers!(input)?;
    meta.set_encryption(sealed.as_ref().map(|s| s.wrapped.clone()));
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
    let algorithm = input
        .checksum_algorithm
        .as_ref()
        .map(|a| algorithm_name(a.as_str()))
        .transpose()?;
    let kind = algorithm
        .map(|a| upload_checksum_type(a, input.checksum_type.as_ref().map(|t| t.as_str())))
        .transpose()?;
    if let (Some(algorithm), Some(kind)) = (algorithm, kind) {
        meta.set_checksum_kind(Some((algorithm.to_string(), kind)));
    }
    let upload_id = store
        .create_upload(&input.bucket, &input.key, meta)
        .await
        .map_err(to_s3)?;
    let mut output = CreateMultipartUploadOutput {
        bucket: Some(input.bucket.clone()),
        key: Some(input.key.clone()),
        upload_id: Some(upload_id),
        checksum_algorithm: algorithm.map(|a| ChecksumAlgorithm::from(a.to_string())),
        checksum_type: kind.map(checksum_type_dto),
        ..Default::default()
    };
    fill_sse_all!(output, sealed.map(|s| s.answer()).unwrap_or_default());
    Ok(S3Response::new(output))
}

/// The upload's data key, opened with the part request's SSE-C key where
/// the upload was created with one. A different customer key than the
/// upload's is a bad argument of this request, not a denial.
fn upload_key(
    s: &Strata,
    client: Option<&ClientInfo>,
    upload: &lsm::Upload,
    headers: &crate::encryption::CustomerHeaders<'_>,
) -> S3Result<Option<Sealed>> {
    s.sse()
        .open_for_read(client, &upload.create.meta, headers)
        .map_err(|e| match e.code() {
            s3s::S3ErrorCode::AccessDenied => s3_error!(
                InvalidArgument,
                "The provided customer key does not match the one the upload was created with"
            ),
            _ => e,
        })
}

pub(crate) async fn upload_part(
    s: &Strata,
    mut req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let store = s.store()?;
    let input = &mut req.input;
    let number = check_part_number(input.part_number)?;
    let upload = upload_for(s, &input.bucket, &input.key, &input.upload_id)?;
    let sealed = upload_key(
        s,
        req.extensions.get::<ClientInfo>(),
        &upload,
        &customer_headers!(input),
    )?;
    // A part of an upload created with a checksum algorithm always gets
    // that checksum, so that Complete can make the object's from them.
    let algorithm = input.checksum_algorithm.clone().or_else(|| {
        upload
            .create
            .meta
            .checksum_kind()
            .map(|(algorithm, _)| ChecksumAlgorithm::from(algorithm.to_string()))
    });
    let checks = ChecksumRequest::new(
        input.content_md5.clone(),
        algorithm.as_ref(),
        sent_checksums!(input),
        req.trailing_headers.clone(),
    );
    let body = ingest(
        &store,
        sealed.as_ref().map(|s| s.key.clone()),
        input.body.take(),
        input.content_length,
        checks,
        MAX_PUT_BYTES,
        s.body_timeout(),
    )
    .await?;
    let checksums = body.checksums;
    let etag = Sealed::etag_of(sealed.as_ref(), body.md5_hex);
    let part = store
        .put_part(&input.upload_id, number, body.data, etag, checksums.clone())
        .await
        .map_err(to_s3)?;
    let mut output = UploadPartOutput {
        e_tag: Some(ETag::Strong(part.etag.clone())),
        ..Default::default()
    };
    fill_checksums!(output, checksums);
    fill_sse_all!(output, sealed.map(|s| s.answer()).unwrap_or_default());
    Ok(S3Response::new(output))
}

pub(crate) async fn upload_part_copy(
    s: &Strata,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let store = s.store()?;
    let input = &req.input;
    let number = check_part_number(input.part_number)?;
    let upload = upload_for(s, &input.bucket, &input.key, &input.upload_id)?;
    let client = req.extensions.get::<ClientInfo>();
    let sealed = upload_key(s, client, &upload, &customer_headers!(input))?;
    let source = checked_copy_source(
        &store,
        &input.copy_source,
        input.copy_source_if_match.as_ref(),
        input.copy_source_if_none_match.as_ref(),
        input.copy_source_if_modified_since.as_ref(),
        input.copy_source_if_unmodified_since.as_ref(),
    )?;
    let range = match &input.copy_source_range {
        None => 0..source.meta.size,
        Some(text) => {
            let r = Range::parse(text)
                .map_err(|_| s3_error!(InvalidArgument, "invalid x-amz-copy-source-range"))?;
            match r {
                Range::Int {
                    last: Some(last), ..
                } if last >= source.meta.size => {
                    return Err(s3_error!(
                        InvalidRange,
                        "x-amz-copy-source-range is past the end of the source"
                    ))
                }
                Range::Int { last: Some(_), .. } => {}
                _ => {
                    return Err(s3_error!(
                        InvalidArgument,
                        "x-amz-copy-source-range must be bytes=first-last"
                    ))
                }
            }
            r.check(source.meta.size)?
        }
    };
    let source_key =
        s.sse()
            .open_for_read(client, &source.meta, &copy_source_customer_headers!(input))?;
    // The part's bytes are re-chunked (and sealed under the upload's key):
    // a range rarely aligns with chunks, and the part's ETag must be the
    // MD5 of exactly these bytes.
    let blob = object_body(&store, &source, range.clone(), source_key.map(|s| s.key)).await?;
    let body = ingest(
        &store,
        sealed.as_ref().map(|s| s.key.clone()),
        Some(blob),
        Some((range.end - range.start) as i64),
        ChecksumRequest::new(None, None, Default::default(), None),
        MAX_PUT_BYTES,
        s.body_timeout(),
    )
    .await?;
    let etag = Sealed::etag_of(sealed.as_ref(), body.md5_hex);
    let part = store
        .put_part(&input.upload_id, number, body.data, etag, vec![])
        .await
        .map_err(to_s3)?;
    let mut output = UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(ETag::Strong(part.etag.clone())),
            last_modified: Some(timestamp_ms(part.last_modified_ms)),
            ..Default::default()
        }),
        ..Default::default()
    };
    fill_sse_all!(output, sealed.map(|s| s.answer()).unwrap_or_default());
    Ok(S3Response::new(output))
}

/// One checksum of a list of five (CRC32, CRC32C, CRC64NVME, SHA1,
/// SHA256: the order of `body::ALGORITHMS`) by algorithm name.
fn pick(values: [Option<String>; 5], algorithm: &str) -> Option<String> {
    let at = crate::body::ALGORITHMS
        .iter()
        .position(|a| *a == algorithm)?;
    values.into_iter().nth(at).flatten()
}

/// The object's checksum, made from its parts', for an upload created
/// with a checksum algorithm; checked against what the client sent.
fn upload_checksums(
    upload: &lsm::Upload,
    listed: &[CompletedPart],
    sent: [Option<String>; 5],
) -> S3Result<Vec<(String, String)>> {
    let Some((algorithm, kind)) = upload.create.meta.checksum_kind() else {
        return Ok(Vec::new());
    };
    let algorithm = algorithm.to_string();
    let mut values = Vec::with_capacity(listed.len());
    for part in listed {
        let number = part.part_number.unwrap_or(0).max(0) as u32;
        // A part that is not there fails Complete with InvalidPart, below.
        let Some(stored) = upload.parts.get(&number) else {
            return Ok(Vec::new());
        };
        let value = stored
            .checksums
            .iter()
            .find(|(name, _)| *name == algorithm)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| {
                s3_error!(InvalidRequest, "part {number} has no {algorithm} checksum")
            })?;
        let given = pick(sent_checksums!(part), &algorithm);
        if given.is_some_and(|g| g.trim() != value) {
            return Err(s3_error!(
                InvalidPart,
                "part {number}'s {algorithm} checksum differs from the one uploaded"
            ));
        }
        values.push((value, stored.size));
    }
    let whole = object_checksum(&algorithm, kind, &values)?;
    if pick(sent, &algorithm).is_some_and(|g| g.trim() != whole) {
        return Err(s3_error!(
            BadDigest,
            "the {algorithm} checksum you specified did not match the parts'"
        ));
    }
    Ok(vec![(algorithm, whole)])
}

pub(crate) fn checksum_type_dto(kind: lsm::ChecksumType) -> ChecksumType {
    ChecksumType::from_static(match kind {
        lsm::ChecksumType::Composite => ChecksumType::COMPOSITE,
        lsm::ChecksumType::FullObject => ChecksumType::FULL_OBJECT,
    })
}

pub(crate) async fn complete(
    s: &Strata,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let store = s.store()?;
    let input = &req.input;
    let listed = input
        .multipart_upload
        .as_ref()
        .and_then(|m| m.parts.as_ref())
        .ok_or_else(|| s3_error!(MalformedXML, "no parts listed"))?;
    if listed.len() > MAX_PART_NUMBER as usize {
        return Err(s3_error!(MalformedXML, "too many parts"));
    }
    let mut parts = Vec::with_capacity(listed.len());
    for part in listed {
        let number = part
            .part_number
            .ok_or_else(|| s3_error!(MalformedXML, "part without PartNumber"))?;
        let etag = part
            .e_tag
            .as_ref()
            .ok_or_else(|| s3_error!(MalformedXML, "part without ETag"))?;
        // A part number listed twice is InvalidPartOrder, as AWS answers
        // it (s3-tests' test_multipart_resend_first_finishes_last expects
        // RGW's acceptance instead).
        parts.push((
            check_part_number(number).map_err(|_| s3_error!(InvalidPart))?,
            etag.value().to_string(),
        ));
    }
    let condition = write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
    // An upload already completed is answered by the store from the
    // version it made; one still open is checked here first.
    let checksums = match store.upload(&input.upload_id) {
        Ok(upload) => {
            if upload.create.bucket != input.bucket || upload.create.key != input.key {
                return Err(s3_error!(NoSuchUpload));
            }
            let current = store
                .version(&input.bucket, &input.key, lsm::VersionRef::Current)
                .ok();
            precheck(&condition, current.as_deref())?;
            upload_checksums(&upload, listed, sent_checksums!(input))?
        }
        Err(lsm::Error::NoSuchUpload) => Vec::new(),
        Err(e) => return Err(to_s3(e)),
    };
    let entry = store
        .complete_upload(
            &input.bucket,
            &input.key,
            &input.upload_id,
            &parts,
            condition.clone(),
            checksums,
        )
        .await
        .map_err(|e| write_error(e, &condition))?;
    let config = store.bucket_config(&input.bucket).map_err(to_s3)?;
    let mut output = CompleteMultipartUploadOutput {
        bucket: Some(input.bucket.clone()),
        key: Some(input.key.clone()),
        e_tag: Some(etag(&entry.meta)),
        location: Some(format!("/{}/{}", input.bucket, input.key)),
        version_id: written_version(&entry),
        expiration: expiration(&config, &input.key, &entry),
        checksum_type: entry
            .meta
            .checksum_kind()
            .map(|(_, kind)| kind)
            .filter(|_| !entry.meta.checksums.is_empty())
            .map(checksum_type_dto),
        ..Default::default()
    };
    fill_checksums!(output, entry.meta.checksums.clone());
    fill_sse!(
        output,
        crate::encryption::SseAnswer::of(entry.meta.encryption(), None)
    );
    Ok(S3Response::new(output))
}

pub(crate) async fn abort(
    s: &Strata,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let input = &req.input;
    upload_for(s, &input.bucket, &input.key, &input.upload_id)?;
    s.store()?
        .abort_upload(&input.upload_id)
        .await
        .map_err(to_s3)?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

/// The account that created an upload owns what it makes (unless the
/// bucket's ownership setting gave it to the bucket's owner).
fn upload_owner(
    store: &lsm::Store,
    create: &lsm::format::MultipartCreate,
    bucket_owner: &str,
) -> Owner {
    let by = create.meta.acl().map_or(bucket_owner, |a| &a.owner);
    crate::acl::owner_dto(store, by)
}

pub(crate) async fn list_parts(
    s: &Strata,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let input = &req.input;
    let upload = upload_for(s, &input.bucket, &input.key, &input.upload_id)?;
    let store = s.store()?;
    let bucket_owner = store.bucket_config(&input.bucket).map_err(to_s3)?;
    let owner = upload_owner(&store, &upload.create, bucket_owner.owner());
    let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
    let marker = input.part_number_marker.unwrap_or(0).max(0) as u32;
    let after: Vec<_> = upload
        .parts
        .range(marker + 1..)
        .map(|(_, p)| p.clone())
        .collect();
    let truncated = after.len() > max;
    let shown = &after[..after.len().min(max)];
    let kind = upload.create.meta.checksum_kind();
    let algorithm = kind.map(|(algorithm, _)| algorithm.to_string());
    let parts = shown
        .iter()
        .map(|p| {
            let mut part = Part {
                part_number: Some(p.part_number as i32),
                e_tag: Some(ETag::Strong(p.etag.clone())),
                size: Some(p.size as i64),
                last_modified: Some(timestamp_ms(p.last_modified_ms)),
                ..Default::default()
            };
            let own = p
                .checksums
                .iter()
                .filter(|(name, _)| Some(name) == algorithm.as_ref());
            fill_checksums!(part, own.cloned());
            part
        })
        .collect();
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(input.bucket.clone()),
        key: Some(input.key.clone()),
        upload_id: Some(input.upload_id.clone()),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: shown
            .last()
            .filter(|_| truncated)
            .map(|p| p.part_number as i32),
        max_parts: Some(max as i32),
        is_truncated: Some(truncated),
        parts: Some(parts),
        checksum_algorithm: algorithm.clone().map(ChecksumAlgorithm::from),
        checksum_type: kind.map(|(_, kind)| checksum_type_dto(kind)),
        owner: Some(owner.clone()),
        initiator: Some(Initiator {
            display_name: owner.display_name,
            id: owner.id,
        }),
        ..Default::default()
    }))
}

pub(crate) async fn list_uploads(
    s: &Strata,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let store = s.store()?;
    let input = &req.input;
    let prefix = input.prefix.as_deref().unwrap_or("");
    let url = input
        .encoding_type
        .as_ref()
        .is_some_and(|e| e.as_str() == EncodingType::URL);
    let max = input.max_uploads.unwrap_or(1000).clamp(0, 1000) as usize;
    let key_marker = input.key_marker.as_deref().unwrap_or("");
    let all = store.list_uploads(&input.bucket, prefix).map_err(to_s3)?;
    let after: Vec<_> = all
        .into_iter()
        .filter(|u| {
            let key = u.create.key.as_str();
            key > key_marker
                || (key == key_marker
                    && input
                        .upload_id_marker
                        .as_deref()
                        .is_some_and(|m| u.create.upload_id.as_str() > m))
        })
        .collect();
    let enc = |k: &str| if url { url_encode(k) } else { k.to_string() };
    // With a delimiter, keys that continue past it fold into common prefixes,
    // each counting once toward max-uploads.
    let delimiter = input.delimiter.as_deref().filter(|d| !d.is_empty());
    let mut shown = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut truncated = false;
    for upload in &after {
        let rest = &upload.create.key[prefix.len()..];
        let common = delimiter.and_then(|d| {
            rest.find(d)
                .map(|at| &upload.create.key[..prefix.len() + at + d.len()])
        });
        if let Some(common) = common {
            if prefixes.last().map(String::as_str) == Some(common) {
                continue;
            }
        }
        if shown.len() + prefixes.len() == max {
            truncated = true;
            break;
        }
        match common {
            Some(common) => prefixes.push(common.to_string()),
            None => shown.push(upload.clone()),
        }
    }
    let bucket_owner = store
        .bucket_config(&input.bucket)
        .map_err(to_s3)?
        .owner()
        .to_string();
    let uploads = shown
        .iter()
        .map(|u| {
            let owner = upload_owner(&store, &u.create, &bucket_owner);
            MultipartUpload {
                key: Some(enc(&u.create.key)),
                upload_id: Some(u.create.upload_id.clone()),
                initiated: Some(timestamp_ms(u.create.initiated_ms)),
                initiator: Some(Initiator {
                    display_name: owner.display_name.clone(),
                    id: owner.id.clone(),
                }),
                owner: Some(owner),
                ..Default::default()
            }
        })
        .collect();
    let common_prefixes = prefixes
        .iter()
        .map(|p| CommonPrefix {
            prefix: Some(enc(p)),
        })
        .collect();
    let last = shown.last().filter(|_| truncated);
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket.clone()),
        prefix: Some(enc(prefix)),
        key_marker: input.key_marker.clone(),
        upload_id_marker: input.upload_id_marker.clone(),
        next_key_marker: last.map(|u| enc(&u.create.key)),
        next_upload_id_marker: last.map(|u| u.create.upload_id.clone()),
        max_uploads: Some(max as i32),
        is_truncated: Some(truncated),
        uploads: Some(uploads),
        common_prefixes: Some(common_prefixes),
        delimiter: input.delimiter.clone(),
        encoding_type: input.encoding_type.clone(),
        ..Default::default()
    }))
}
