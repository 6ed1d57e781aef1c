//! Reads of object versions: GET and HEAD (any version, ranges, parts,
//! conditions, response overrides, and the headers S3 adds: version id,
//! expiration, tag count, object lock, checksums), and GetObjectAttributes.

use std::ops::Range as Span;

use lsm::{ChecksumType as StoredChecksumType, ObjectEntry, VersionRef};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::authz::ClientInfo;
use crate::body::{fill_checksums, object_body};
use crate::convert::*;
use crate::encryption::{customer_headers, fill_sse_all};
use crate::errors::{read_error, to_s3};
use crate::object_config::lock_mode_name;
use crate::objects::expiration;
use crate::service::Strata;

fn resolve_range(range: Option<&Range>, size: u64) -> S3Result<(Span<u64>, Option<String>)> {
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

/// The bytes of part `n`: a multipart object's part as uploaded, or, for
/// any other object, part 1 is all of it.
fn part_span(entry: &ObjectEntry, n: i32) -> S3Result<Span<u64>> {
    let parts = entry.meta.parts();
    let invalid = || s3_error!(InvalidPart, "The requested partnumber is not satisfiable");
    let index = usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_sub(1))
        .ok_or_else(invalid)?;
    if parts.is_empty() {
        return if index == 0 {
            Ok(0..entry.meta.size)
        } else {
            Err(invalid())
        };
    }
    let part = parts.get(index).ok_or_else(invalid)?;
    let start: u64 = parts[..index].iter().map(|p| p.size).sum();
    Ok(start..start + part.size)
}

/// What a read returns: the span, its Content-Range, and the part it is.
struct Selection {
    span: Span<u64>,
    content_range: Option<String>,
    part: Option<usize>,
}

fn select(entry: &ObjectEntry, range: Option<&Range>, part: Option<i32>) -> S3Result<Selection> {
    match (range, part) {
        (Some(_), Some(_)) => Err(s3_error!(
            InvalidRequest,
            "Cannot specify both Range header and partNumber query parameter"
        )),
        (None, Some(n)) => {
            let span = part_span(entry, n)?;
            let content_range = (span.end > span.start)
                .then(|| format!("bytes {}-{}/{}", span.start, span.end - 1, entry.meta.size));
            Ok(Selection {
                span,
                content_range,
                part: Some(n as usize - 1),
            })
        }
        (range, None) => {
            let (span, content_range) = resolve_range(range, entry.meta.size)?;
            Ok(Selection {
                span,
                content_range,
                part: None,
            })
        }
    }
}

fn checksum_type_name(t: StoredChecksumType) -> ChecksumType {
    ChecksumType::from_static(match t {
        StoredChecksumType::Composite => ChecksumType::COMPOSITE,
        StoredChecksumType::FullObject => ChecksumType::FULL_OBJECT,
    })
}

/// The checksums a read returns when asked: the whole object's, or one
/// part's; none for a range (it would not match the bytes sent).
fn checksums_for(
    entry: &ObjectEntry,
    selection: &Selection,
) -> (Vec<(String, String)>, Option<ChecksumType>) {
    let meta = &entry.meta;
    let kind = meta
        .checksum_kind()
        .map_or(StoredChecksumType::FullObject, |(_, kind)| kind);
    match selection.part {
        Some(i) if !meta.parts().is_empty() => {
            let algorithm = meta.checksum_kind().map(|(a, _)| a.to_string());
            let value = meta.parts().get(i).and_then(|p| p.checksum.clone());
            match (algorithm, value) {
                (Some(a), Some(v)) => (vec![(a, v)], Some(checksum_type_name(kind))),
                _ => (Vec::new(), None),
            }
        }
        _ if selection.content_range.is_some() && selection.part.is_none() => (Vec::new(), None),
        _ if meta.checksums.is_empty() => (Vec::new(), None),
        _ => (meta.checksums.clone(), Some(checksum_type_name(kind))),
    }
}

/// The headers GET and HEAD share, set on either output.
macro_rules! fill_version_headers {
    ($output:expr, $entry:expr, $config:expr, $key:expr, $current:expr, $selection:expr) => {{
        let entry: &ObjectEntry = $entry;
        let meta = &entry.meta;
        $output.version_id = shown_version(entry, $config.versioning);
        if $current {
            $output.expiration = expiration($config, $key, entry);
        }
        if let Some(retention) = meta.retention() {
            $output.object_lock_mode = Some(ObjectLockMode::from(
                lock_mode_name(retention.mode).to_string(),
            ));
            $output.object_lock_retain_until_date = Some(timestamp_ms(retention.until_ms));
        }
        if $config.object_lock.is_some() {
            let hold = if meta.legal_hold() { "ON" } else { "OFF" };
            $output.object_lock_legal_hold_status =
                Some(ObjectLockLegalHoldStatus::from(hold.to_string()));
        }
        if $selection.part.is_some() && !meta.parts().is_empty() {
            $output.parts_count = Some(meta.parts().len() as i32);
        }
    }};
}

fn wants_checksums(mode: Option<&ChecksumMode>) -> bool {
    mode.is_some_and(|m| m.as_str() == ChecksumMode::ENABLED)
}

pub(crate) async fn get_object(
    s: &Strata,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    crate::encryption::refuse_server_side_headers_on_read(&req.headers)?;
    let store = s.store()?;
    let input = &req.input;
    let version = version_ref(input.version_id.as_deref())?;
    let config = store.bucket_config(&input.bucket).map_err(to_s3)?;
    let entry = store
        .readable_version(&input.bucket, &input.key, version)
        .map_err(|e| read_error(e, version != VersionRef::Current))?;
    check_conditions(
        &entry,
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.if_unmodified_since.as_ref(),
    )?;
    // A part or range that is not there is answered before the key is
    // asked for, as AWS orders them.
    let selection = select(&entry, input.range.as_ref(), input.part_number)?;
    let sealed = s.sse().open_for_read(
        req.extensions.get::<ClientInfo>(),
        &entry.meta,
        &customer_headers!(input),
    )?;
    let body = object_body(
        &store,
        &entry,
        selection.span.clone(),
        sealed.as_ref().map(|s| s.key.clone()),
    )
    .await?;
    let meta = &entry.meta;
    let mut output = GetObjectOutput {
        body: Some(body),
        content_length: Some((selection.span.end - selection.span.start) as i64),
        content_range: selection.content_range.clone(),
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
        tag_count: (!meta.tags().is_empty()).then(|| meta.tags().len() as i32),
        ..Default::default()
    };
    let current = version == VersionRef::Current;
    fill_version_headers!(output, &entry, &config, &input.key, current, selection);
    if wants_checksums(input.checksum_mode.as_ref()) {
        let (checksums, kind) = checksums_for(&entry, &selection);
        output.checksum_type = kind;
        fill_checksums!(output, checksums);
    }
    fill_sse_all!(output, sealed.map(|s| s.answer()).unwrap_or_default());
    Ok(S3Response::new(output))
}

pub(crate) async fn head_object(
    s: &Strata,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    crate::encryption::refuse_server_side_headers_on_read(&req.headers)?;
    let store = s.store()?;
    let input = &req.input;
    let version = version_ref(input.version_id.as_deref())?;
    let config = store.bucket_config(&input.bucket).map_err(to_s3)?;
    let entry = store
        .readable_version(&input.bucket, &input.key, version)
        .map_err(|e| read_error(e, version != VersionRef::Current))?;
    check_conditions(
        &entry,
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.if_unmodified_since.as_ref(),
    )?;
    // A part or range that is not there is answered before the key is
    // asked for, as AWS orders them.
    let selection = select(&entry, input.range.as_ref(), input.part_number)?;
    let sealed = s.sse().open_for_read(
        req.extensions.get::<ClientInfo>(),
        &entry.meta,
        &customer_headers!(input),
    )?;
    let meta = &entry.meta;
    let mut output = HeadObjectOutput {
        content_length: Some((selection.span.end - selection.span.start) as i64),
        content_range: selection.content_range.clone(),
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
    let current = version == VersionRef::Current;
    fill_version_headers!(output, &entry, &config, &input.key, current, selection);
    if wants_checksums(input.checksum_mode.as_ref()) {
        let (checksums, kind) = checksums_for(&entry, &selection);
        output.checksum_type = kind;
        fill_checksums!(output, checksums);
    }
    fill_sse_all!(output, sealed.map(|s| s.answer()).unwrap_or_default());
    let mut response = S3Response::new(output);
    // HeadObject's output has no field for it, but S3 sends it.
    if !meta.tags().is_empty() {
        response
            .headers
            .insert("x-amz-tagging-count", meta.tags().len().into());
    }
    Ok(response)
}

/// The part of a checksum set in one algorithm's slot.
macro_rules! fill_part_checksum {
    ($part:expr, $algorithm:expr, $value:expr) => {
        match $algorithm {
            "CRC32" => $part.checksum_crc32 = Some($value),
            "CRC32C" => $part.checksum_crc32c = Some($value),
            "CRC64NVME" => $part.checksum_crc64nvme = Some($value),
            "SHA1" => $part.checksum_sha1 = Some($value),
            "SHA256" => $part.checksum_sha256 = Some($value),
            _ => {}
        }
    };
}

pub(crate) async fn get_object_attributes(
    s: &Strata,
    req: S3Request<GetObjectAttributesInput>,
) -> S3Result<S3Response<GetObjectAttributesOutput>> {
    let store = s.store()?;
    let input = &req.input;
    let version = version_ref(input.version_id.as_deref())?;
    let entry = store
        .readable_version(&input.bucket, &input.key, version)
        .map_err(|e| read_error(e, version != VersionRef::Current))?;
    // An SSE-C object's attributes need its key, as its data does.
    s.sse().open_for_read(
        req.extensions.get::<ClientInfo>(),
        &entry.meta,
        &customer_headers!(input),
    )?;
    // Clients send the attributes as one comma-separated header, which
    // s3s hands over as one element.
    let wanted = |name: &str| {
        input
            .object_attributes
            .iter()
            .flat_map(|a| a.as_str().split(','))
            .any(|a| a.trim() == name)
    };
    let meta = &entry.meta;
    let mut output = GetObjectAttributesOutput {
        last_modified: Some(timestamp_ms(meta.last_modified_ms)),
        version_id: written_version(&entry),
        ..Default::default()
    };
    if wanted(ObjectAttributes::ETAG) {
        output.e_tag = Some(etag(meta));
    }
    if wanted(ObjectAttributes::STORAGE_CLASS) {
        output.storage_class = Some(StorageClass::from_static(StorageClass::STANDARD));
    }
    if wanted(ObjectAttributes::OBJECT_SIZE) {
        output.object_size = Some(meta.size as i64);
    }
    if wanted(ObjectAttributes::CHECKSUM) && !meta.checksums.is_empty() {
        let whole = Selection {
            span: 0..meta.size,
            content_range: None,
            part: None,
        };
        let (checksums, kind) = checksums_for(&entry, &whole);
        let mut checksum = Checksum {
            checksum_type: kind,
            ..Default::default()
        };
        fill_checksums!(checksum, checksums);
        output.checksum = Some(checksum);
    }
    if wanted(ObjectAttributes::OBJECT_PARTS) && !meta.parts().is_empty() {
        let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
        let marker = input.part_number_marker.unwrap_or(0).max(0) as u32;
        let algorithm = meta.checksum_kind().map(|(a, _)| a.to_string());
        let after: Vec<_> = meta.parts().iter().filter(|p| p.number > marker).collect();
        let shown = &after[..after.len().min(max)];
        let truncated = after.len() > shown.len();
        let parts = shown
            .iter()
            .map(|p| {
                let mut part = ObjectPart {
                    part_number: Some(p.number as i32),
                    size: Some(p.size as i64),
                    ..Default::default()
                };
                if let (Some(a), Some(v)) = (algorithm.as_deref(), p.checksum.clone()) {
                    fill_part_checksum!(part, a, v);
                }
                part
            })
            .collect();
        output.object_parts = Some(GetObjectAttributesParts {
            is_truncated: Some(truncated),
            max_parts: Some(max as i32),
            part_number_marker: Some(marker as i32),
            next_part_number_marker: shown.last().map(|p| p.number as i32),
            parts: Some(parts),
            total_parts_count: Some(meta.parts().len() as i32),
        });
    }
    Ok(S3Response::new(output))
}
