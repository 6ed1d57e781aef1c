//! Bucket operations and listings (ListObjects v1 and v2).

use base64::Engine;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::convert::*;
use crate::errors::to_s3;
use crate::service::Strata;

const MAX_LIST_KEYS: i32 = 1000;

fn owner() -> Owner {
    Owner {
        display_name: Some("strata".into()),
        id: Some("strata".into()),
    }
}

pub(crate) async fn list_buckets(s: &Strata) -> S3Result<S3Response<ListBucketsOutput>> {
    let store = s.store()?;
    let buckets = store
        .list_buckets()
        .into_iter()
        .map(|b| Bucket {
            name: Some(b.name),
            creation_date: Some(timestamp_ms(b.created_ms)),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(owner()),
        ..Default::default()
    }))
}

pub(crate) async fn create_bucket(
    s: &Strata,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let store = s.store()?;
    store
        .create_bucket(&req.input.bucket)
        .await
        .map_err(to_s3)?;
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{}", req.input.bucket)),
    }))
}

pub(crate) async fn delete_bucket(
    s: &Strata,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    s.store()?
        .delete_bucket(&req.input.bucket)
        .await
        .map_err(to_s3)?;
    Ok(S3Response::new(DeleteBucketOutput {}))
}

pub(crate) fn require_bucket(s: &Strata, bucket: &str) -> S3Result<()> {
    if s.store()?.bucket_exists(bucket) {
        Ok(())
    } else {
        Err(s3_error!(NoSuchBucket))
    }
}

fn max_keys(requested: Option<i32>) -> S3Result<usize> {
    match requested {
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must not be negative")),
        Some(n) => Ok(n.min(MAX_LIST_KEYS) as usize),
        None => Ok(MAX_LIST_KEYS as usize),
    }
}

struct Listed {
    contents: Vec<Object>,
    prefixes: Vec<CommonPrefix>,
    next: Option<String>,
}

fn list(
    s: &Strata,
    bucket: &str,
    query: &lsm::ListQuery<'_>,
    url: bool,
    with_owner: bool,
) -> S3Result<Listed> {
    let page = s.store()?.list_objects(bucket, query).map_err(to_s3)?;
    let enc = |k: &str| if url { url_encode(k) } else { k.to_string() };
    let contents = page
        .objects
        .iter()
        .map(|(key, entry)| Object {
            key: Some(enc(key)),
            last_modified: Some(timestamp_ms(entry.meta.last_modified_ms)),
            e_tag: Some(etag(&entry.meta)),
            size: Some(entry.meta.size as i64),
            storage_class: Some(ObjectStorageClass::from_static(
                ObjectStorageClass::STANDARD,
            )),
            owner: with_owner.then(owner),
            ..Default::default()
        })
        .collect();
    let prefixes = page
        .common_prefixes
        .iter()
        .map(|p| CommonPrefix {
            prefix: Some(enc(p)),
        })
        .collect();
    Ok(Listed {
        contents,
        prefixes,
        next: page.next_marker,
    })
}

pub(crate) async fn list_objects_v2(
    s: &Strata,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let input = &req.input;
    let url = input
        .encoding_type
        .as_ref()
        .is_some_and(|e| e.as_str() == EncodingType::URL);
    let token = match &input.continuation_token {
        Some(t) => Some(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    s3_error!(
                        InvalidArgument,
                        "The continuation token provided is incorrect"
                    )
                })?,
        ),
        None => None,
    };
    let after = token.as_deref().or(input.start_after.as_deref());
    let prefix = input.prefix.as_deref().unwrap_or("");
    let max = max_keys(input.max_keys)?;
    let query = lsm::ListQuery {
        prefix,
        delimiter: input.delimiter.as_deref(),
        start_after: after,
        max_keys: max,
    };
    let listed = list(
        s,
        &input.bucket,
        &query,
        url,
        input.fetch_owner.unwrap_or(false),
    )?;
    let key_count = (listed.contents.len() + listed.prefixes.len()) as i32;
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket.clone()),
        prefix: Some(if url {
            url_encode(prefix)
        } else {
            prefix.to_string()
        }),
        delimiter: input
            .delimiter
            .as_deref()
            .map(|d| if url { url_encode(d) } else { d.to_string() }),
        max_keys: Some(max as i32),
        key_count: Some(key_count),
        continuation_token: input.continuation_token.clone(),
        start_after: input.start_after.as_deref().map(|a| {
            if url {
                url_encode(a)
            } else {
                a.to_string()
            }
        }),
        is_truncated: Some(listed.next.is_some()),
        next_continuation_token: listed
            .next
            .map(|n| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(n)),
        contents: Some(listed.contents),
        common_prefixes: Some(listed.prefixes),
        encoding_type: input.encoding_type.clone(),
        ..Default::default()
    }))
}

pub(crate) async fn list_objects(
    s: &Strata,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let input = &req.input;
    let url = input
        .encoding_type
        .as_ref()
        .is_some_and(|e| e.as_str() == EncodingType::URL);
    let prefix = input.prefix.as_deref().unwrap_or("");
    let max = max_keys(input.max_keys)?;
    let query = lsm::ListQuery {
        prefix,
        delimiter: input.delimiter.as_deref(),
        start_after: input.marker.as_deref(),
        max_keys: max,
    };
    let listed = list(s, &input.bucket, &query, url, true)?;
    let enc = |v: &str| if url { url_encode(v) } else { v.to_string() };
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(input.bucket.clone()),
        prefix: Some(enc(prefix)),
        marker: Some(input.marker.as_deref().map(enc).unwrap_or_default()),
        delimiter: input.delimiter.as_deref().map(enc),
        max_keys: Some(max as i32),
        is_truncated: Some(listed.next.is_some()),
        // S3 returns NextMarker only with a delimiter; clients use the last key otherwise.
        next_marker: listed
            .next
            .as_deref()
            .filter(|_| input.delimiter.is_some())
            .map(enc),
        contents: Some(listed.contents),
        common_prefixes: Some(listed.prefixes),
        encoding_type: input.encoding_type.clone(),
        ..Default::default()
    }))
}
