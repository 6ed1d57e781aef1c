//! A bucket's access settings: its policy (validated as IAM JSON, naming
//! only this bucket), object ownership, public access block and CORS
//! rules. Each PUT is one durable record; what they allow is decided in
//! `authz.rs`, and CORS answers in `cors.rs`.

use axum::http;
use lsm::format::{CorsRule, ObjectOwnership, PublicAccessBlock};
use lsm::BucketSetting;
use policy::{Policy, PolicyKind};
use s3s::dto;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::bucket_config::{config, set};
use crate::service::Strata;

/// A bucket policy must parse, and every resource it names must be this
/// bucket or inside it.
fn validated_policy(bucket: &str, text: &str) -> S3Result<Policy> {
    let policy =
        Policy::parse(text, PolicyKind::Resource).map_err(|e| s3_error!(MalformedPolicy, "{e}"))?;
    let own = format!("arn:aws:s3:::{bucket}");
    for resource in policy.resources() {
        // What the pattern says before its first wildcard must lead to
        // this bucket or inside it (`arn:aws:s3:::*` may, another
        // bucket's name may not).
        let literal = resource
            .find(['*', '?'])
            .map_or(resource, |at| &resource[..at]);
        let wild = literal.len() < resource.len();
        let inside = resource == own
            || literal
                .strip_prefix(own.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
            || (wild && format!("{own}/").starts_with(literal));
        if !inside {
            return Err(s3_error!(
                MalformedPolicy,
                "Policy has invalid resource: {resource}"
            ));
        }
    }
    Ok(policy)
}

pub(crate) async fn put_policy(
    s: &Strata,
    req: S3Request<dto::PutBucketPolicyInput>,
) -> S3Result<S3Response<dto::PutBucketPolicyOutput>> {
    let input = &req.input;
    let config = config(s, &input.bucket)?;
    let policy = validated_policy(&input.bucket, &input.policy)?;
    if config
        .public_access_block
        .is_some_and(|b| b.block_public_policy)
        && crate::authz::is_public(&policy)
    {
        return Err(s3_error!(AccessDenied, "Access Denied"));
    }
    set(
        s,
        &input.bucket,
        BucketSetting::Policy(Some(input.policy.clone())),
    )
    .await?;
    Ok(S3Response::with_status(
        dto::PutBucketPolicyOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}

pub(crate) async fn get_policy(
    s: &Strata,
    req: S3Request<dto::GetBucketPolicyInput>,
) -> S3Result<S3Response<dto::GetBucketPolicyOutput>> {
    match config(s, &req.input.bucket)?.policy {
        Some(policy) => Ok(S3Response::new(dto::GetBucketPolicyOutput {
            policy: Some(policy.to_string()),
        })),
        None => Err(s3_error!(
            NoSuchBucketPolicy,
            "The bucket policy does not exist"
        )),
    }
}

pub(crate) async fn delete_policy(
    s: &Strata,
    req: S3Request<dto::DeleteBucketPolicyInput>,
) -> S3Result<S3Response<dto::DeleteBucketPolicyOutput>> {
    config(s, &req.input.bucket)?;
    set(s, &req.input.bucket, BucketSetting::Policy(None)).await?;
    Ok(S3Response::with_status(
        dto::DeleteBucketPolicyOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}

pub(crate) async fn get_policy_status(
    s: &Strata,
    req: S3Request<dto::GetBucketPolicyStatusInput>,
) -> S3Result<S3Response<dto::GetBucketPolicyStatusOutput>> {
    let Some(text) = config(s, &req.input.bucket)?.policy else {
        return Err(s3_error!(
            NoSuchBucketPolicy,
            "The bucket policy does not exist"
        ));
    };
    let public = Policy::parse(&text, PolicyKind::Resource)
        .map(|p| crate::authz::is_public(&p))
        .unwrap_or(false);
    Ok(S3Response::new(dto::GetBucketPolicyStatusOutput {
        policy_status: Some(dto::PolicyStatus {
            is_public: Some(public),
        }),
    }))
}

pub(crate) async fn put_ownership(
    s: &Strata,
    req: S3Request<dto::PutBucketOwnershipControlsInput>,
) -> S3Result<S3Response<dto::PutBucketOwnershipControlsOutput>> {
    let input = &req.input;
    let [rule] = input.ownership_controls.rules.as_slice() else {
        return Err(s3_error!(MalformedXML, "ownership controls hold one rule"));
    };
    let ownership = ownership_from(rule.object_ownership.as_str())?;
    // ACLs off while the bucket's ACL grants anyone but its owner would
    // silently drop those grants: S3 refuses it.
    let config = config(s, &input.bucket)?;
    if ownership == ObjectOwnership::BucketOwnerEnforced
        && config.grants() != [lsm::owner_full_control(config.owner())]
    {
        return Err(crate::errors::custom(
            "InvalidBucketAclWithObjectOwnership",
            http::StatusCode::BAD_REQUEST,
            "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
        ));
    }
    set(s, &input.bucket, BucketSetting::Ownership(Some(ownership))).await?;
    Ok(S3Response::new(
        dto::PutBucketOwnershipControlsOutput::default(),
    ))
}

pub(crate) fn ownership_from(name: &str) -> S3Result<ObjectOwnership> {
    match name {
        dto::ObjectOwnership::BUCKET_OWNER_ENFORCED => Ok(ObjectOwnership::BucketOwnerEnforced),
        dto::ObjectOwnership::BUCKET_OWNER_PREFERRED => Ok(ObjectOwnership::BucketOwnerPreferred),
        dto::ObjectOwnership::OBJECT_WRITER => Ok(ObjectOwnership::ObjectWriter),
        other => Err(s3_error!(
            InvalidArgument,
            "unknown object ownership {other}"
        )),
    }
}

pub(crate) async fn get_ownership(
    s: &Strata,
    req: S3Request<dto::GetBucketOwnershipControlsInput>,
) -> S3Result<S3Response<dto::GetBucketOwnershipControlsOutput>> {
    let Some(ownership) = config(s, &req.input.bucket)?.ownership else {
        return Err(crate::errors::custom(
            "OwnershipControlsNotFoundError",
            http::StatusCode::NOT_FOUND,
            "The bucket ownership controls were not found",
        ));
    };
    let name = match ownership {
        ObjectOwnership::BucketOwnerEnforced => dto::ObjectOwnership::BUCKET_OWNER_ENFORCED,
        ObjectOwnership::BucketOwnerPreferred => dto::ObjectOwnership::BUCKET_OWNER_PREFERRED,
        ObjectOwnership::ObjectWriter => dto::ObjectOwnership::OBJECT_WRITER,
    };
    Ok(S3Response::new(dto::GetBucketOwnershipControlsOutput {
        ownership_controls: Some(dto::OwnershipControls {
            rules: vec![dto::OwnershipControlsRule {
                object_ownership: dto::ObjectOwnership::from_static(name),
            }],
        }),
    }))
}

pub(crate) async fn delete_ownership(
    s: &Strata,
    req: S3Request<dto::DeleteBucketOwnershipControlsInput>,
) -> S3Result<S3Response<dto::DeleteBucketOwnershipControlsOutput>> {
    config(s, &req.input.bucket)?;
    set(s, &req.input.bucket, BucketSetting::Ownership(None)).await?;
    Ok(S3Response::with_status(
        dto::DeleteBucketOwnershipControlsOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}

pub(crate) async fn put_public_access_block(
    s: &Strata,
    req: S3Request<dto::PutPublicAccessBlockInput>,
) -> S3Result<S3Response<dto::PutPublicAccessBlockOutput>> {
    let input = &req.input;
    config(s, &input.bucket)?;
    let c = &input.public_access_block_configuration;
    let block = PublicAccessBlock {
        block_public_acls: c.block_public_acls.unwrap_or(false),
        ignore_public_acls: c.ignore_public_acls.unwrap_or(false),
        block_public_policy: c.block_public_policy.unwrap_or(false),
        restrict_public_buckets: c.restrict_public_buckets.unwrap_or(false),
    };
    set(
        s,
        &input.bucket,
        BucketSetting::PublicAccessBlock(Some(block)),
    )
    .await?;
    Ok(S3Response::new(dto::PutPublicAccessBlockOutput::default()))
}

pub(crate) async fn get_public_access_block(
    s: &Strata,
    req: S3Request<dto::GetPublicAccessBlockInput>,
) -> S3Result<S3Response<dto::GetPublicAccessBlockOutput>> {
    let Some(b) = config(s, &req.input.bucket)?.public_access_block else {
        return Err(crate::errors::custom(
            "NoSuchPublicAccessBlockConfiguration",
            http::StatusCode::NOT_FOUND,
            "The public access block configuration was not found",
        ));
    };
    Ok(S3Response::new(dto::GetPublicAccessBlockOutput {
        public_access_block_configuration: Some(dto::PublicAccessBlockConfiguration {
            block_public_acls: Some(b.block_public_acls),
            ignore_public_acls: Some(b.ignore_public_acls),
            block_public_policy: Some(b.block_public_policy),
            restrict_public_buckets: Some(b.restrict_public_buckets),
        }),
    }))
}

pub(crate) async fn delete_public_access_block(
    s: &Strata,
    req: S3Request<dto::DeletePublicAccessBlockInput>,
) -> S3Result<S3Response<dto::DeletePublicAccessBlockOutput>> {
    config(s, &req.input.bucket)?;
    set(s, &req.input.bucket, BucketSetting::PublicAccessBlock(None)).await?;
    Ok(S3Response::with_status(
        dto::DeletePublicAccessBlockOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}

/// S3's limit on CORS rules per bucket.
const MAX_CORS_RULES: usize = 100;

pub(crate) async fn put_cors(
    s: &Strata,
    req: S3Request<dto::PutBucketCorsInput>,
) -> S3Result<S3Response<dto::PutBucketCorsOutput>> {
    let input = &req.input;
    config(s, &input.bucket)?;
    let rules = &input.cors_configuration.cors_rules;
    if rules.is_empty() || rules.len() > MAX_CORS_RULES {
        return Err(s3_error!(
            MalformedXML,
            "a CORS configuration holds 1 to {MAX_CORS_RULES} rules"
        ));
    }
    let mut stored = Vec::with_capacity(rules.len());
    for r in rules {
        for method in &r.allowed_methods {
            if !matches!(method.as_str(), "GET" | "PUT" | "POST" | "DELETE" | "HEAD") {
                return Err(s3_error!(
                    InvalidRequest,
                    "Found unsupported HTTP method in CORS config. Unsupported method is {method}"
                ));
            }
        }
        stored.push(CorsRule {
            id: r.id.clone(),
            allowed_origins: r.allowed_origins.clone(),
            allowed_methods: r.allowed_methods.clone(),
            allowed_headers: r.allowed_headers.clone().unwrap_or_default(),
            expose_headers: r.expose_headers.clone().unwrap_or_default(),
            max_age_s: r.max_age_seconds.and_then(|s| u32::try_from(s).ok()),
        });
    }
    set(s, &input.bucket, BucketSetting::Cors(Some(stored))).await?;
    Ok(S3Response::new(dto::PutBucketCorsOutput::default()))
}

pub(crate) async fn get_cors(
    s: &Strata,
    req: S3Request<dto::GetBucketCorsInput>,
) -> S3Result<S3Response<dto::GetBucketCorsOutput>> {
    let Some(rules) = config(s, &req.input.bucket)?.cors else {
        return Err(s3_error!(
            NoSuchCORSConfiguration,
            "The CORS configuration does not exist"
        ));
    };
    let rules = rules
        .iter()
        .map(|r| dto::CORSRule {
            id: r.id.clone(),
            allowed_origins: r.allowed_origins.clone(),
            allowed_methods: r.allowed_methods.clone(),
            allowed_headers: (!r.allowed_headers.is_empty()).then(|| r.allowed_headers.clone()),
            expose_headers: (!r.expose_headers.is_empty()).then(|| r.expose_headers.clone()),
            max_age_seconds: r.max_age_s.and_then(|s| i32::try_from(s).ok()),
        })
        .collect();
    Ok(S3Response::new(dto::GetBucketCorsOutput {
        cors_rules: Some(rules),
    }))
}

pub(crate) async fn delete_cors(
    s: &Strata,
    req: S3Request<dto::DeleteBucketCorsInput>,
) -> S3Result<S3Response<dto::DeleteBucketCorsOutput>> {
    config(s, &req.input.bucket)?;
    set(s, &req.input.bucket, BucketSetting::Cors(None)).await?;
    Ok(S3Response::with_status(
        dto::DeleteBucketCorsOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}
