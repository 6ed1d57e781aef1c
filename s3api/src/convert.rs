//! Conversions between the store's types and S3's: timestamps, ETags, user
//! metadata, version ids, conditional requests and writes, URL-encoding of
//! listed keys.

use std::time::{Duration, UNIX_EPOCH};

use lsm::{Condition, ETagMatch, ObjectEntry, ObjectMeta, VersionRef, VersioningState};
use s3s::dto::{ETag, ETagCondition, Metadata, Timestamp, TimestampFormat};
use s3s::{s3_error, S3Result};

pub(crate) fn timestamp_ms(ms: u64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms))
}

/// HTTP dates have whole seconds; conditions compare at that precision.
fn timestamp_s(ms: u64) -> Timestamp {
    timestamp_ms(ms / 1000 * 1000)
}

pub(crate) fn etag(meta: &ObjectMeta) -> ETag {
    ETag::Strong(meta.etag.clone())
}

/// Milliseconds since the epoch of an S3 timestamp (0 before the epoch).
pub(crate) fn timestamp_to_ms(ts: &Timestamp) -> u64 {
    let at = time::OffsetDateTime::from(ts.clone());
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// The version a request names: none is the current one.
pub(crate) fn version_ref(id: Option<&str>) -> S3Result<VersionRef> {
    match id {
        None => Ok(VersionRef::Current),
        Some(id) => lsm::parse_version_id(id)
            .ok_or_else(|| s3_error!(InvalidArgument, "Invalid version id specified")),
    }
}

/// The version id a response shows: a null version only where the bucket
/// has versioning (enabled or suspended), as S3 does.
pub(crate) fn shown_version(entry: &ObjectEntry, versioning: VersioningState) -> Option<String> {
    match (entry.null_version, versioning) {
        (true, VersioningState::Unversioned) => None,
        _ => Some(entry.version_id()),
    }
}

/// The version id a write's response shows: only a new, non-null version's.
pub(crate) fn written_version(entry: &ObjectEntry) -> Option<String> {
    (!entry.null_version).then(|| entry.version_id())
}

fn etag_match(condition: &ETagCondition) -> ETagMatch {
    match condition {
        ETagCondition::Any => ETagMatch::Any,
        ETagCondition::ETag(e) => ETagMatch::Is(e.value().to_string()),
    }
}

/// A write's If-Match / If-None-Match, to be decided where it applies.
pub(crate) fn write_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<Condition> {
    match (if_match, if_none_match) {
        (None, None) => Ok(Condition::Always),
        (Some(m), None) => Ok(Condition::IfMatch(etag_match(m))),
        (None, Some(m)) => Ok(Condition::IfNoneMatch(etag_match(m))),
        (Some(_), Some(_)) => Err(s3_error!(
            NotImplemented,
            "If-Match and If-None-Match cannot be combined on a write"
        )),
    }
}

/// The same, from raw request headers (CopyObject's input does not carry
/// them in s3s 0.14).
pub(crate) fn write_condition_from_headers(headers: &axum::http::HeaderMap) -> S3Result<Condition> {
    let parse = |name: &str| -> S3Result<Option<ETagCondition>> {
        headers
            .get(name)
            .map(|v| {
                ETagCondition::parse_http_header(v.as_bytes())
                    .map_err(|_| s3_error!(InvalidArgument, "invalid {name} header"))
            })
            .transpose()
    };
    write_condition(
        parse("if-match")?.as_ref(),
        parse("if-none-match")?.as_ref(),
    )
}

/// Whether a write's early check already fails (a 412 or 404 before the
/// body is read); the decision that counts is made again where it applies.
pub(crate) fn precheck(condition: &Condition, current: Option<&ObjectEntry>) -> S3Result<()> {
    let live = current.filter(|e| !e.delete_marker);
    let failed = match condition {
        Condition::Always => None,
        Condition::IfMatch(m) => match live {
            None => Some(s3_error!(NoSuchKey)),
            Some(e) if !m.matches(&e.meta.etag) => Some(s3_error!(PreconditionFailed)),
            Some(_) => None,
        },
        Condition::IfNoneMatch(m) => live
            .filter(|e| m.matches(&e.meta.etag))
            .map(|_| s3_error!(PreconditionFailed)),
    };
    failed.map_or(Ok(()), Err)
}

pub(crate) fn http_date(ts: &Timestamp) -> Option<String> {
    let mut out = Vec::new();
    ts.format(TimestampFormat::HttpDate, &mut out).ok()?;
    String::from_utf8(out).ok()
}

pub(crate) fn parse_http_date(s: &str) -> Option<Timestamp> {
    Timestamp::parse(TimestampFormat::HttpDate, s).ok()
}

pub(crate) fn metadata_out(meta: &ObjectMeta) -> Option<Metadata> {
    (!meta.user_metadata.is_empty()).then(|| meta.user_metadata.iter().cloned().collect())
}

pub(crate) fn metadata_in(metadata: Option<Metadata>) -> Vec<(String, String)> {
    let mut pairs: Vec<_> = metadata.unwrap_or_default().into_iter().collect();
    pairs.sort();
    pairs
}

/// S3 allows 2 KB of user metadata per object.
pub(crate) fn check_metadata_size(pairs: &[(String, String)]) -> S3Result<()> {
    let bytes: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > 2048 {
        return Err(s3_error!(MetadataTooLarge, "user metadata exceeds 2 KB"));
    }
    Ok(())
}

/// The stored metadata an S3 input sets (PutObject, CreateMultipartUpload,
/// CopyObject with REPLACE): content headers and checked user metadata.
macro_rules! meta_from_headers {
    ($input:expr) => {{
        let user_metadata = $crate::convert::metadata_in($input.metadata.clone());
        $crate::convert::check_metadata_size(&user_metadata).map(|()| lsm::ObjectMeta {
            content_type: $input.content_type.clone(),
            content_encoding: $crate::convert::stored_encoding($input.content_encoding.clone()),
            cache_control: $input.cache_control.clone(),
            content_disposition: $input.content_disposition.clone(),
            content_language: $input.content_language.clone(),
            expires: $input.expires.as_ref().and_then($crate::convert::http_date),
            user_metadata,
            ..Default::default()
        })
    }};
}
pub(crate) use meta_from_headers;

/// Strips the aws-chunked transfer coding: the stored object is the decoded body.
pub(crate) fn stored_encoding(content_encoding: Option<String>) -> Option<String> {
    let kept: Vec<&str> = content_encoding
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    (!kept.is_empty()).then(|| kept.join(", "))
}

fn etag_matches(condition: &ETagCondition, entry: &ObjectEntry) -> bool {
    match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == entry.meta.etag,
    }
}

/// The outcome of If-Match / If-None-Match / If-(Un)Modified-Since, in the
/// order RFC 9110 and S3 evaluate them.
pub(crate) fn check_conditions(
    entry: &ObjectEntry,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let modified = timestamp_s(entry.meta.last_modified_ms);
    if let Some(cond) = if_match {
        if !etag_matches(cond, entry) {
            return Err(s3_error!(PreconditionFailed));
        }
    } else if let Some(since) = if_unmodified_since {
        if modified > *since {
            return Err(s3_error!(PreconditionFailed));
        }
    }
    let not_modified = match if_none_match {
        Some(cond) => etag_matches(cond, entry),
        None => if_modified_since.is_some_and(|since| modified <= *since),
    };
    if not_modified {
        let mut e = s3_error!(NotModified);
        let mut headers = axum::http::HeaderMap::new();
        if let Ok(v) = etag(&entry.meta).to_http_header() {
            headers.insert(axum::http::header::ETAG, v);
        }
        if let Some(date) = http_date(&modified).and_then(|d| d.parse().ok()) {
            headers.insert(axum::http::header::LAST_MODIFIED, date);
        }
        e.set_headers(headers);
        return Err(e);
    }
    Ok(())
}

/// Percent-encodes a key for encoding-type=url, keeping '/' as S3 does.
pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_keeps_slashes_and_escapes_the_rest() {
        assert_eq!(url_encode("a b/ç+&.txt"), "a%20b/%C3%A7%2B%26.txt");
    }

    #[test]
    fn aws_chunked_is_never_stored() {
        assert_eq!(stored_encoding(Some("aws-chunked".into())), None);
        assert_eq!(
            stored_encoding(Some("aws-chunked, gzip".into())),
            Some("gzip".into())
        );
        assert_eq!(
            stored_encoding(Some("deflate, gzip".into())),
            Some("deflate, gzip".into())
        );
        assert_eq!(stored_encoding(None), None);
    }
}
