//! Listings of a bucket: its current objects (ListObjects v1 and v2) and
//! every version with its delete markers (ListObjectVersions).

use base64::Engine;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::buckets::decode_token;
use crate::convert::*;
use crate::errors::to_s3;
use crate::service::Strata;

const MAX_LIST_KEYS: i32 = 1000;

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
    let store = s.store()?;
    let page = store.list_objects(bucket, query).map_err(to_s3)?;
    let bucket_owner = store
        .bucket_config(bucket)
        .map_err(to_s3)?
        .owner()
        .to_string();
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
            owner: with_owner.then(|| {
                let owner = entry.meta.acl().map_or(bucket_owner.as_str(), |a| &a.owner);
                crate::acl::owner_dto(&store, owner)
            }),
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
    let token = input
        .continuation_token
        .as_deref()
        .map(decode_token)
        .transpose()?;
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
            .filter(|d| !d.is_empty())
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
        // v1 does not encode the prefix it echoes (botocore, like AWS,
        // decodes only the delimiter and the markers there).
        prefix: Some(prefix.to_string()),
        marker: Some(input.marker.as_deref().map(enc).unwrap_or_default()),
        delimiter: input
            .delimiter
            .as_deref()
            .filter(|d| !d.is_empty())
            .map(enc),
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

pub(crate) async fn list_object_versions(
    s: &Strata,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let input = &req.input;
    let store = s.store()?;
    let url = input
        .encoding_type
        .as_ref()
        .is_some_and(|e| e.as_str() == EncodingType::URL);
    let enc = |v: &str| if url { url_encode(v) } else { v.to_string() };
    let version_marker = match input.version_id_marker.as_deref().filter(|m| !m.is_empty()) {
        None => None,
        Some(_) if input.key_marker.is_none() => {
            return Err(s3_error!(
                InvalidArgument,
                "A version-id marker cannot be specified without a key marker."
            ))
        }
        Some(marker) => Some(
            lsm::parse_version_id(marker)
                .ok_or_else(|| s3_error!(InvalidArgument, "Invalid version id specified"))?,
        ),
    };
    let prefix = input.prefix.as_deref().unwrap_or("");
    let max = max_keys(input.max_keys)?;
    let query = lsm::VersionQuery {
        prefix,
        delimiter: input.delimiter.as_deref(),
        key_marker: input.key_marker.as_deref(),
        version_marker,
        max_keys: max,
    };
    let page = store.list_versions(&input.bucket, &query).map_err(to_s3)?;
    let config = store.bucket_config(&input.bucket).map_err(to_s3)?;
    let owner_of = |entry: &lsm::ObjectEntry| {
        let owner = entry
            .meta
            .acl()
            .map_or(config.owner(), |a| a.owner.as_str());
        crate::acl::owner_dto(&store, owner)
    };
    let mut versions = Vec::new();
    let mut markers = Vec::new();
    for listed in &page.versions {
        let entry = &listed.entry;
        if entry.delete_marker {
            markers.push(DeleteMarkerEntry {
                key: Some(enc(&listed.key)),
                version_id: Some(entry.version_id()),
                is_latest: Some(listed.is_latest),
                last_modified: Some(timestamp_ms(entry.meta.last_modified_ms)),
                owner: Some(owner_of(entry)),
            });
        } else {
            versions.push(ObjectVersion {
                key: Some(enc(&listed.key)),
                version_id: Some(entry.version_id()),
                is_latest: Some(listed.is_latest),
                last_modified: Some(timestamp_ms(entry.meta.last_modified_ms)),
                e_tag: Some(etag(&entry.meta)),
                size: Some(entry.meta.size as i64),
                storage_class: Some(ObjectVersionStorageClass::from_static(
                    ObjectVersionStorageClass::STANDARD,
                )),
                owner: Some(owner_of(entry)),
                ..Default::default()
            });
        }
    }
    let prefixes: Vec<CommonPrefix> = page
        .common_prefixes
        .iter()
        .map(|p| CommonPrefix {
            prefix: Some(enc(p)),
        })
        .collect();
    let (next_key, next_version) = match page.next {
        Some((key, version)) => (Some(enc(&key)), version),
        None => (None, None),
    };
    Ok(S3Response::new(ListObjectVersionsOutput {
        name: Some(input.bucket.clone()),
        prefix: Some(enc(prefix)),
        delimiter: input
            .delimiter
            .as_deref()
            .filter(|d| !d.is_empty())
            .map(enc),
        key_marker: Some(input.key_marker.as_deref().map(enc).unwrap_or_default()),
        version_id_marker: Some(input.version_id_marker.clone().unwrap_or_default()),
        max_keys: Some(max as i32),
        is_truncated: Some(next_key.is_some()),
        next_key_marker: next_key,
        next_version_id_marker: next_version,
        versions: (!versions.is_empty()).then_some(versions),
        delete_markers: (!markers.is_empty()).then_some(markers),
        common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
        encoding_type: input.encoding_type.clone(),
        ..Default::default()
    }))
}
