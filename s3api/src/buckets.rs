//! Bucket operations: create (with object lock), delete, head, location,
//! and the list of buckets. Listings of a bucket's keys are in
//! `listings.rs`.

use base64::Engine;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::convert::*;
use crate::errors::to_s3;
use crate::service::Strata;

/// S3 lists at most 10,000 buckets a page.
const MAX_BUCKETS: usize = 10_000;

pub(crate) async fn list_buckets(
    s: &Strata,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let store = s.store()?;
    let input = &req.input;
    let caller = crate::authz::caller_of(&req.extensions);
    let account = crate::authz::account_of(&caller).to_string();
    let after = match &input.continuation_token {
        Some(token) => Some(decode_token(token)?),
        None => None,
    };
    let prefix = input.prefix.as_deref().unwrap_or("");
    let max = match input.max_buckets {
        Some(n) if !(1..=MAX_BUCKETS as i32).contains(&n) => {
            return Err(s3_error!(
                InvalidArgument,
                "max-buckets is 1 to {MAX_BUCKETS}"
            ))
        }
        Some(n) => n as usize,
        None => MAX_BUCKETS,
    };
    let mut matching = store
        .list_buckets()
        .into_iter()
        .filter(|b| b.name.starts_with(prefix))
        // An account lists its own buckets, as in S3.
        .filter(|b| {
            store
                .bucket_config(&b.name)
                .is_ok_and(|c| c.owner() == account)
        })
        .filter(|b| after.as_ref().is_none_or(|a| b.name.as_str() > a.as_str()));
    let page: Vec<_> = matching.by_ref().take(max).collect();
    // A token only when another bucket follows.
    let next = matching
        .next()
        .and(page.last())
        .map(|b| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&b.name));
    let buckets = page
        .into_iter()
        .map(|b| Bucket {
            name: Some(b.name),
            creation_date: Some(timestamp_ms(b.created_ms)),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(crate::acl::owner_dto(&store, &account)),
        continuation_token: next,
        prefix: input.prefix.clone(),
    }))
}

/// A continuation token (base64url of the last name or key returned).
pub(crate) fn decode_token(token: &str) -> S3Result<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "The continuation token provided is incorrect"
            )
        })
}

pub(crate) async fn create_bucket(
    s: &Strata,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let store = s.store()?;
    let input = &req.input;
    let caller = crate::authz::caller_of(&req.extensions);
    let account = crate::authz::account_of(&caller).to_string();
    if let Ok(existing) = store.bucket_config(&input.bucket) {
        if existing.owner() != account {
            return Err(s3_error!(BucketAlreadyExists));
        }
    }
    let mut settings = vec![lsm::BucketSetting::Owner(account.clone())];
    if input.object_lock_enabled_for_bucket.unwrap_or(false) {
        settings.push(lsm::BucketSetting::ObjectLock(Default::default()));
    }
    let ownership = match &input.object_ownership {
        Some(o) => Some(crate::bucket_access::ownership_from(o.as_str())?),
        None if s.aws_bucket_defaults() => Some(lsm::format::ObjectOwnership::BucketOwnerEnforced),
        None => None,
    };
    let public_access_block = s
        .aws_bucket_defaults()
        .then_some(lsm::format::PublicAccessBlock {
            block_public_acls: true,
            ignore_public_acls: true,
            block_public_policy: true,
            restrict_public_buckets: true,
        });
    let mut born = lsm::BucketConfig {
        owner: Some(account.clone()),
        ownership,
        public_access_block,
        ..Default::default()
    };
    if let Some(grants) = crate::acl::requested(&req.headers, &account, &account)? {
        crate::acl::check_grantees(&store, &grants)?;
        born.acl = Some(grants.clone());
        crate::acl::check_allowed(&born, &grants)?;
        settings.push(lsm::BucketSetting::Acl(grants));
    }
    if let Some(ownership) = born.ownership {
        settings.push(lsm::BucketSetting::Ownership(Some(ownership)));
    }
    if let Some(block) = born.public_access_block {
        settings.push(lsm::BucketSetting::PublicAccessBlock(Some(block)));
    }
    match store.create_bucket_with(&input.bucket, settings).await {
        // us-east-1 answers 200 to the owner re-creating a bucket (AWS's
        // legacy behaviour there); other regions BucketAlreadyOwnedByYou.
        Err(lsm::Error::BucketExists) if s.region() == "us-east-1" => {}
        other => other.map_err(to_s3)?,
    }
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

fn require_bucket(s: &Strata, bucket: &str) -> S3Result<()> {
    if s.store()?.bucket_exists(bucket) {
        Ok(())
    } else {
        Err(s3_error!(NoSuchBucket))
    }
}

pub(crate) async fn head_bucket(
    s: &Strata,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    require_bucket(s, &req.input.bucket)?;
    Ok(S3Response::new(HeadBucketOutput::default()))
}

pub(crate) async fn get_location(
    s: &Strata,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    require_bucket(s, &req.input.bucket)?;
    Ok(S3Response::new(GetBucketLocationOutput::default()))
}
