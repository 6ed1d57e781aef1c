//! POST object: the HTML form upload browsers send. s3s checks the form's
//! SigV4 signature and its POST policy's conditions (eq, starts-with,
//! content-length-range) and aggregates the file (the front has read the
//! fields s3s does not: post_form.rs), up to
//! `HttpLimits::max_post_object_bytes`; the form's fields are a PutObject's,
//! so the upload is exactly a PUT, authorised as one.

use axum::http::HeaderValue;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::convert::url_encode;

use crate::service::Strata;

pub(crate) async fn post_object(
    s: &Strata,
    req: S3Request<PostObjectInput>,
) -> S3Result<S3Response<PostObjectOutput>> {
    let mut req = req.map_input(into_put);
    if req.input.tagging.is_none() {
        req.input.tagging = req
            .extensions
            .get::<crate::post_form::FormTagging>()
            .map(|t| t.0.clone());
    }
    // A form's tagging field is a Tagging document; a PUT's header is a
    // query string, which the PUT path reads.
    if let Some(xml) = req
        .input
        .tagging
        .as_deref()
        .filter(|t| t.trim_start().starts_with('<'))
    {
        req.input.tagging = Some(tagging_query(xml)?);
    }
    // A canned ACL given as a form field counts as the header would.
    if let Some(acl) = &req.input.acl {
        if let Ok(value) = HeaderValue::from_str(acl.as_str()) {
            req.headers.insert("x-amz-acl", value);
        }
    }
    let answer = crate::objects::put_object(s, req).await?;
    Ok(answer.map_output(into_post))
}

/// `<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag>...` as
/// `k=v&...`. The field is small (the form's limits bound it); anything
/// but that shape is MalformedXML.
fn tagging_query(xml: &str) -> S3Result<String> {
    let malformed = || s3_error!(MalformedXML, "the tagging field is not a Tagging document");
    let between = |text: &'_ str, open: &str, close: &str| -> Option<String> {
        let (_, rest) = text.split_once(open)?;
        let (inner, _) = rest.split_once(close)?;
        Some(unescape(inner))
    };
    let mut pairs = Vec::new();
    let mut rest = xml;
    while let Some((_, after)) = rest.split_once("<Tag>") {
        let (tag, next) = after.split_once("</Tag>").ok_or_else(malformed)?;
        let key = between(tag, "<Key>", "</Key>").ok_or_else(malformed)?;
        let value = between(tag, "<Value>", "</Value>").unwrap_or_default();
        pairs.push(format!("{}={}", url_encode(&key), url_encode(&value)));
        rest = next;
    }
    Ok(pairs.join("&"))
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn into_put(x: PostObjectInput) -> PutObjectInput {
    PutObjectInput {
        acl: x.acl,
        body: x.body,
        bucket: x.bucket,
        bucket_key_enabled: x.bucket_key_enabled,
        cache_control: x.cache_control,
        checksum_algorithm: x.checksum_algorithm,
        checksum_crc32: x.checksum_crc32,
        checksum_crc32c: x.checksum_crc32c,
        checksum_crc64nvme: x.checksum_crc64nvme,
        checksum_sha1: x.checksum_sha1,
        checksum_sha256: x.checksum_sha256,
        content_disposition: x.content_disposition,
        content_encoding: x.content_encoding,
        content_language: x.content_language,
        content_length: x.content_length,
        content_md5: x.content_md5,
        content_type: x.content_type,
        expected_bucket_owner: x.expected_bucket_owner,
        expires: x.expires,
        grant_full_control: x.grant_full_control,
        grant_read: x.grant_read,
        grant_read_acp: x.grant_read_acp,
        grant_write_acp: x.grant_write_acp,
        if_match: x.if_match,
        if_none_match: x.if_none_match,
        key: x.key,
        metadata: x.metadata,
        object_lock_legal_hold_status: x.object_lock_legal_hold_status,
        object_lock_mode: x.object_lock_mode,
        object_lock_retain_until_date: x.object_lock_retain_until_date,
        request_payer: x.request_payer,
        sse_customer_algorithm: x.sse_customer_algorithm,
        sse_customer_key: x.sse_customer_key,
        sse_customer_key_md5: x.sse_customer_key_md5,
        ssekms_encryption_context: x.ssekms_encryption_context,
        ssekms_key_id: x.ssekms_key_id,
        server_side_encryption: x.server_side_encryption,
        storage_class: x.storage_class,
        tagging: x.tagging,
        website_redirect_location: x.website_redirect_location,
        write_offset_bytes: x.write_offset_bytes,
    }
}

fn into_post(x: PutObjectOutput) -> PostObjectOutput {
    PostObjectOutput {
        bucket_key_enabled: x.bucket_key_enabled,
        checksum_crc32: x.checksum_crc32,
        checksum_crc32c: x.checksum_crc32c,
        checksum_crc64nvme: x.checksum_crc64nvme,
        checksum_sha1: x.checksum_sha1,
        checksum_sha256: x.checksum_sha256,
        checksum_type: x.checksum_type,
        // s3s writes this value as it is into the redirect's `etag`
        // parameter and the 201 document's ETag, where S3 gives it quoted.
        e_tag: x.e_tag.map(|e| ETag::Strong(format!("\"{}\"", e.value()))),
        expiration: x.expiration,
        request_charged: x.request_charged,
        sse_customer_algorithm: x.sse_customer_algorithm,
        sse_customer_key_md5: x.sse_customer_key_md5,
        ssekms_encryption_context: x.ssekms_encryption_context,
        ssekms_key_id: x.ssekms_key_id,
        server_side_encryption: x.server_side_encryption,
        size: x.size,
        version_id: x.version_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tagging_document_becomes_the_header_form() {
        let xml = "<Tagging><TagSet><Tag><Key>a b</Key><Value>x&amp;y</Value></Tag>\
                   <Tag><Key>0</Key><Value></Value></Tag></TagSet></Tagging>";
        assert_eq!(tagging_query(xml).unwrap(), "a%20b=x%26y&0=");
        assert!(
            tagging_query("<Tagging><TagSet><Tag><Value>v</Value></Tag></TagSet></Tagging>")
                .is_err()
        );
        assert_eq!(tagging_query("<Tagging/>").unwrap(), "");
    }
}
