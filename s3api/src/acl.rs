//! ACLs: canned ACLs and x-amz-grant-* headers on CreateBucket, PutObject,
//! CreateMultipartUpload and CopyObject, and Get/Put of a bucket's and an
//! object's ACL. Grants are stored as given; what they allow is decided in
//! `authz.rs` with everything else. The owner's full control is implicit
//! and never stored.

use lsm::format::{Grant, Grantee, ObjectAcl, ObjectOwnership, Permission};
use lsm::{BucketSetting, VersionChange};
use s3s::dto;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::errors::to_s3;
use crate::service::Strata;

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// The owner element S3 shows: the account id is also its canonical id.
pub(crate) fn owner_dto(store: &lsm::Store, account: &str) -> dto::Owner {
    let name = store
        .with_iam(|iam| iam.account(account).map(|a| a.name.clone()))
        .unwrap_or_else(|| "strata".to_string());
    dto::Owner {
        display_name: Some(name),
        id: Some(account.to_string()),
    }
}

fn canned(name: &str, bucket_owner: &str) -> S3Result<Vec<Grant>> {
    let grant = |grantee, permission| Grant {
        grantee,
        permission,
    };
    Ok(match name {
        "private" | "aws-exec-read" => Vec::new(),
        "public-read" => vec![grant(Grantee::AllUsers, Permission::Read)],
        "public-read-write" => vec![
            grant(Grantee::AllUsers, Permission::Read),
            grant(Grantee::AllUsers, Permission::Write),
        ],
        "authenticated-read" => vec![grant(Grantee::AuthenticatedUsers, Permission::Read)],
        "bucket-owner-read" => vec![grant(
            Grantee::Account(bucket_owner.to_string()),
            Permission::Read,
        )],
        "bucket-owner-full-control" => vec![grant(
            Grantee::Account(bucket_owner.to_string()),
            Permission::FullControl,
        )],
        other => return Err(s3_error!(InvalidArgument, "unknown canned ACL {other}")),
    })
}

/// `id="123456789012", uri="http://acs.amazonaws.com/groups/global/AllUsers"`
fn grantees(value: &str) -> S3Result<Vec<Grantee>> {
    value
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(|g| {
            let (kind, who) = g
                .split_once('=')
                .ok_or_else(|| s3_error!(InvalidArgument, "a grant is kind=\"value\""))?;
            let who = who.trim().trim_matches('"');
            grantee(kind.trim(), who)
        })
        .collect()
}

fn grantee(kind: &str, who: &str) -> S3Result<Grantee> {
    match kind {
        "id" => Ok(Grantee::Account(who.to_string())),
        "uri" if who == ALL_USERS => Ok(Grantee::AllUsers),
        "uri" if who == AUTHENTICATED_USERS => Ok(Grantee::AuthenticatedUsers),
        "emailAddress" => Err(s3_error!(
            UnresolvableGrantByEmailAddress,
            "grants by e-mail address are not supported"
        )),
        _ => Err(s3_error!(InvalidArgument, "unknown grantee {kind}={who}")),
    }
}

/// The grants a request asks for: a canned ACL or grant headers (not
/// both), or None when it names none.
pub(crate) fn requested(
    headers: &axum::http::HeaderMap,
    bucket_owner: &str,
) -> S3Result<Option<Vec<Grant>>> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let mut grants = Vec::new();
    let mut any_header = false;
    for (name, permission) in [
        ("x-amz-grant-full-control", Permission::FullControl),
        ("x-amz-grant-read", Permission::Read),
        ("x-amz-grant-write", Permission::Write),
        ("x-amz-grant-read-acp", Permission::ReadAcp),
        ("x-amz-grant-write-acp", Permission::WriteAcp),
    ] {
        if let Some(value) = header(name) {
            any_header = true;
            for grantee in grantees(value)? {
                grants.push(Grant {
                    grantee,
                    permission,
                });
            }
        }
    }
    match (header("x-amz-acl"), any_header) {
        (Some(_), true) => Err(s3_error!(
            InvalidRequest,
            "Specifying both Canned ACLs and Header Grants is not allowed"
        )),
        (Some(name), false) => canned(name, bucket_owner).map(Some),
        (None, true) => Ok(Some(grants)),
        (None, false) => Ok(None),
    }
}

pub(crate) fn is_public(grants: &[Grant]) -> bool {
    grants
        .iter()
        .any(|g| matches!(g.grantee, Grantee::AllUsers | Grantee::AuthenticatedUsers))
}

/// Refuses grants the bucket's settings forbid: any but the owner's under
/// BucketOwnerEnforced, public ones under BlockPublicAcls.
pub(crate) fn check_allowed(config: &lsm::BucketConfig, grants: &[Grant]) -> S3Result<()> {
    if config.ownership == Some(ObjectOwnership::BucketOwnerEnforced)
        && grants
            .iter()
            .any(|g| g.grantee != Grantee::Account(config.owner().to_string()))
    {
        return Err(s3_error!(
            AccessControlListNotSupported,
            "The bucket does not allow ACLs"
        ));
    }
    if config
        .public_access_block
        .is_some_and(|b| b.block_public_acls)
        && is_public(grants)
    {
        return Err(s3_error!(AccessDenied, "Access Denied"));
    }
    Ok(())
}

/// The owner and grants of a version a request writes (PUT, copy,
/// multipart create), from its caller and headers.
pub(crate) fn for_request(
    config: &lsm::BucketConfig,
    extensions: &axum::http::Extensions,
    headers: &axum::http::HeaderMap,
) -> S3Result<Option<ObjectAcl>> {
    let writer = crate::authz::caller_of(extensions);
    for_new_object(config, crate::authz::account_of(&writer), headers)
}

/// What an object version written by `writer` carries: its owner and
/// grants when not the default, as the bucket's ownership setting says.
fn for_new_object(
    config: &lsm::BucketConfig,
    writer: &str,
    headers: &axum::http::HeaderMap,
) -> S3Result<Option<ObjectAcl>> {
    let requested = requested(headers, config.owner())?;
    let grants = requested.clone().unwrap_or_default();
    check_allowed(config, &grants)?;
    let owner = match config.ownership {
        Some(ObjectOwnership::BucketOwnerEnforced) => config.owner(),
        // BucketOwnerPreferred: the bucket owner takes objects written
        // with bucket-owner-full-control.
        Some(ObjectOwnership::BucketOwnerPreferred)
            if grants.iter().any(|g| {
                g.permission == Permission::FullControl
                    && g.grantee == Grantee::Account(config.owner().to_string())
            }) =>
        {
            config.owner()
        }
        _ => writer,
    };
    if owner == config.owner() && grants.is_empty() {
        return Ok(None);
    }
    Ok(Some(ObjectAcl {
        owner: owner.to_string(),
        grants,
    }))
}

fn from_dto(policy: &dto::AccessControlPolicy) -> S3Result<Vec<Grant>> {
    let mut out = Vec::new();
    for g in policy.grants.iter().flatten() {
        let who = g
            .grantee
            .as_ref()
            .ok_or_else(|| s3_error!(MalformedACLError, "a grant needs a grantee"))?;
        let grantee = match who.type_.as_str() {
            dto::Type::CANONICAL_USER => {
                let id = who
                    .id
                    .clone()
                    .ok_or_else(|| s3_error!(MalformedACLError, "a CanonicalUser needs an ID"))?;
                Grantee::Account(id)
            }
            dto::Type::GROUP => grantee("uri", who.uri.as_deref().unwrap_or(""))?,
            _ => grantee("emailAddress", "")?,
        };
        let permission = match g.permission.as_ref().map(|p| p.as_str()) {
            Some(dto::Permission::FULL_CONTROL) => Permission::FullControl,
            Some(dto::Permission::READ) => Permission::Read,
            Some(dto::Permission::WRITE) => Permission::Write,
            Some(dto::Permission::READ_ACP) => Permission::ReadAcp,
            Some(dto::Permission::WRITE_ACP) => Permission::WriteAcp,
            _ => return Err(s3_error!(MalformedACLError, "unknown permission")),
        };
        out.push(Grant {
            grantee,
            permission,
        });
    }
    Ok(out)
}

fn to_dto(store: &lsm::Store, owner: &str, grants: &[Grant]) -> (dto::Owner, dto::Grants) {
    let owner_grant = Grant {
        grantee: Grantee::Account(owner.to_string()),
        permission: Permission::FullControl,
    };
    // The owner's full control comes after the stored grants, as S3 and
    // RGW list them.
    let shown = grants
        .iter()
        .filter(|g| **g != owner_grant)
        .chain(std::iter::once(&owner_grant))
        .map(|g| {
            let grantee = match &g.grantee {
                Grantee::Account(id) => dto::Grantee {
                    display_name: owner_dto(store, id).display_name,
                    email_address: None,
                    id: Some(id.clone()),
                    type_: dto::Type::from_static(dto::Type::CANONICAL_USER),
                    uri: None,
                },
                group => dto::Grantee {
                    display_name: None,
                    email_address: None,
                    id: None,
                    type_: dto::Type::from_static(dto::Type::GROUP),
                    uri: Some(
                        match group {
                            Grantee::AllUsers => ALL_USERS,
                            _ => AUTHENTICATED_USERS,
                        }
                        .to_string(),
                    ),
                },
            };
            let permission = match g.permission {
                Permission::FullControl => dto::Permission::FULL_CONTROL,
                Permission::Read => dto::Permission::READ,
                Permission::Write => dto::Permission::WRITE,
                Permission::ReadAcp => dto::Permission::READ_ACP,
                Permission::WriteAcp => dto::Permission::WRITE_ACP,
            };
            dto::Grant {
                grantee: Some(grantee),
                permission: Some(dto::Permission::from_static(permission)),
            }
        })
        .collect();
    (owner_dto(store, owner), shown)
}

/// The grants a PutBucketAcl / PutObjectAcl asks for: canned, headers, or
/// the body's policy.
fn put_grants(
    headers: &axum::http::HeaderMap,
    body: Option<&dto::AccessControlPolicy>,
    bucket_owner: &str,
) -> S3Result<Vec<Grant>> {
    match (requested(headers, bucket_owner)?, body) {
        (Some(grants), _) => Ok(grants),
        (None, Some(policy)) => from_dto(policy),
        (None, None) => Err(s3_error!(MissingSecurityHeader, "an ACL is required")),
    }
}

pub(crate) async fn get_bucket_acl(
    s: &Strata,
    req: S3Request<dto::GetBucketAclInput>,
) -> S3Result<S3Response<dto::GetBucketAclOutput>> {
    let store = s.store()?;
    let config = store.bucket_config(&req.input.bucket).map_err(to_s3)?;
    let (owner, grants) = to_dto(&store, config.owner(), &config.acl);
    Ok(S3Response::new(dto::GetBucketAclOutput {
        grants: Some(grants),
        owner: Some(owner),
    }))
}

pub(crate) async fn put_bucket_acl(
    s: &Strata,
    req: S3Request<dto::PutBucketAclInput>,
) -> S3Result<S3Response<dto::PutBucketAclOutput>> {
    let store = s.store()?;
    let input = &req.input;
    let config = store.bucket_config(&input.bucket).map_err(to_s3)?;
    let grants = put_grants(
        &req.headers,
        input.access_control_policy.as_ref(),
        config.owner(),
    )?;
    let owner_grant = Grant {
        grantee: Grantee::Account(config.owner().to_string()),
        permission: Permission::FullControl,
    };
    let grants: Vec<Grant> = grants.into_iter().filter(|g| *g != owner_grant).collect();
    check_allowed(&config, &grants)?;
    store
        .configure_bucket(&input.bucket, BucketSetting::Acl(grants))
        .await
        .map_err(to_s3)?;
    Ok(S3Response::new(dto::PutBucketAclOutput::default()))
}

fn bucket_and_version(
    store: &lsm::Store,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> S3Result<(lsm::BucketConfig, std::sync::Arc<lsm::ObjectEntry>)> {
    let config = store.bucket_config(bucket).map_err(to_s3)?;
    let version = crate::convert::version_ref(version_id)?;
    let entry = store
        .version(bucket, key, version)
        .map_err(|e| crate::errors::read_error(e, version_id.is_some()))?;
    Ok((config, entry))
}

pub(crate) async fn get_object_acl(
    s: &Strata,
    req: S3Request<dto::GetObjectAclInput>,
) -> S3Result<S3Response<dto::GetObjectAclOutput>> {
    let store = s.store()?;
    let input = &req.input;
    let (config, entry) = bucket_and_version(
        &store,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
    )?;
    let (owner, grants) = match entry.meta.acl() {
        Some(acl) => to_dto(&store, &acl.owner, &acl.grants),
        None => to_dto(&store, config.owner(), &[]),
    };
    Ok(S3Response::new(dto::GetObjectAclOutput {
        grants: Some(grants),
        owner: Some(owner),
        request_charged: None,
    }))
}

pub(crate) async fn put_object_acl(
    s: &Strata,
    req: S3Request<dto::PutObjectAclInput>,
) -> S3Result<S3Response<dto::PutObjectAclOutput>> {
    let store = s.store()?;
    let input = &req.input;
    let (config, entry) = bucket_and_version(
        &store,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
    )?;
    let grants = put_grants(
        &req.headers,
        input.access_control_policy.as_ref(),
        config.owner(),
    )?;
    check_allowed(&config, &grants)?;
    let owner = entry
        .meta
        .acl()
        .map_or(config.owner(), |a| a.owner.as_str())
        .to_string();
    let owner_grant = Grant {
        grantee: Grantee::Account(owner.clone()),
        permission: Permission::FullControl,
    };
    let grants: Vec<Grant> = grants.into_iter().filter(|g| *g != owner_grant).collect();
    let acl =
        (owner != config.owner() || !grants.is_empty()).then_some(ObjectAcl { owner, grants });
    store
        .update_version(
            &input.bucket,
            &input.key,
            lsm::VersionRef::Lsn(entry.lsn),
            VersionChange::Acl(acl),
        )
        .await
        .map_err(to_s3)?;
    Ok(S3Response::new(dto::PutObjectAclOutput::default()))
}
