//! ACLs: canned ACLs and x-amz-grant-* headers on CreateBucket, PutObject,
//! CreateMultipartUpload and CopyObject, and Get/Put of a bucket's and an
//! object's ACL. Grants are stored as given; what they allow is decided in
//! `authz.rs` with everything else. Grants are kept exactly as set (a canned
//! ACL includes the owner's full control, grant headers only what they
//! name), and a bucket or object that never had one set shows its owner's
//! full control alone.

use lsm::format::{Grant, Grantee, ObjectAcl, ObjectOwnership, Permission};
use lsm::{owner_full_control, BucketSetting, VersionChange};
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

/// A canned ACL's grants for a resource owned by `owner` in a bucket owned
/// by `bucket_owner`: the owner's full control and what the name adds.
fn canned(name: &str, owner: &str, bucket_owner: &str) -> S3Result<Vec<Grant>> {
    let grant = |grantee, permission| Grant {
        grantee,
        permission,
    };
    let mut grants = Vec::new();
    match name {
        "private" | "aws-exec-read" => {}
        "public-read" => grants.push(grant(Grantee::AllUsers, Permission::Read)),
        "public-read-write" => {
            grants.push(grant(Grantee::AllUsers, Permission::Read));
            grants.push(grant(Grantee::AllUsers, Permission::Write));
        }
        "authenticated-read" => grants.push(grant(Grantee::AuthenticatedUsers, Permission::Read)),
        "bucket-owner-read" if owner != bucket_owner => grants.push(grant(
            Grantee::Account(bucket_owner.to_string()),
            Permission::Read,
        )),
        "bucket-owner-full-control" if owner != bucket_owner => {
            grants.push(owner_full_control(bucket_owner))
        }
        "bucket-owner-read" | "bucket-owner-full-control" => {}
        other => return Err(s3_error!(InvalidArgument, "unknown canned ACL {other}")),
    }
    // The owner's full control comes last, as S3 and RGW list it.
    grants.push(owner_full_control(owner));
    Ok(grants)
}

/// Every account a grant names must exist (an unknown id is
/// InvalidArgument, as S3 answers).
pub(crate) fn check_grantees(store: &lsm::Store, grants: &[Grant]) -> S3Result<()> {
    for g in grants {
        if let Grantee::Account(id) = &g.grantee {
            let known = id == lsm::format::FIRST_ACCOUNT_ID
                || store.with_iam(|iam| iam.account(id).is_some());
            if !known {
                return Err(s3_error!(InvalidArgument, "Invalid id"));
            }
        }
    }
    Ok(())
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

/// The grants a request asks for on a resource owned by `owner`: a canned
/// ACL or grant headers (not both), or None when it names none.
pub(crate) fn requested(
    headers: &axum::http::HeaderMap,
    owner: &str,
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
        (Some(name), false) => canned(name, owner, bucket_owner).map(Some),
        (None, true) => Ok(Some(grants)),
        (None, false) => Ok(None),
    }
}

pub(crate) fn is_public(grants: &[Grant]) -> bool {
    grants
        .iter()
        .any(|g| matches!(g.grantee, Grantee::AllUsers | Grantee::AuthenticatedUsers))
}

fn acls_not_supported() -> s3s::S3Error {
    s3_error!(
        AccessControlListNotSupported,
        "The bucket does not allow ACLs"
    )
}

/// Under BucketOwnerEnforced a write may carry no ACL but
/// bucket-owner-full-control, and no ACL may be set at all (S3's rules).
fn refuse_if_enforced(
    config: &lsm::BucketConfig,
    headers: Option<&axum::http::HeaderMap>,
) -> S3Result<()> {
    if config.ownership != Some(ObjectOwnership::BucketOwnerEnforced) {
        return Ok(());
    }
    let Some(headers) = headers else {
        return Err(acls_not_supported());
    };
    let canned_ok = headers
        .get("x-amz-acl")
        .is_none_or(|v| v.as_bytes() == b"bucket-owner-full-control");
    let grants = headers
        .keys()
        .any(|k| k.as_str().starts_with("x-amz-grant-"));
    match canned_ok && !grants {
        true => Ok(()),
        false => Err(acls_not_supported()),
    }
}

/// Refuses grants the bucket's settings forbid: any but the owner's under
/// BucketOwnerEnforced, public ones under BlockPublicAcls.
pub(crate) fn check_allowed(config: &lsm::BucketConfig, grants: &[Grant]) -> S3Result<()> {
    if config.ownership == Some(ObjectOwnership::BucketOwnerEnforced)
        && grants
            .iter()
            .any(|g| *g != owner_full_control(config.owner()))
    {
        return Err(acls_not_supported());
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
    refuse_if_enforced(config, Some(headers))?;
    let bucket_owner = config.owner();
    let as_written = requested(headers, writer, bucket_owner)?;
    let owner = match config.ownership {
        Some(ObjectOwnership::BucketOwnerEnforced) => bucket_owner,
        // BucketOwnerPreferred: the bucket owner takes objects written
        // with bucket-owner-full-control.
        Some(ObjectOwnership::BucketOwnerPreferred)
            if headers
                .get("x-amz-acl")
                .is_some_and(|v| v.as_bytes() == b"bucket-owner-full-control") =>
        {
            bucket_owner
        }
        _ => writer,
    };
    // A canned ACL names the owner; say it again for the owner chosen.
    let grants = match (owner == writer, as_written) {
        (true, grants) => grants,
        (false, Some(_)) => requested(headers, owner, bucket_owner)?,
        (false, None) => None,
    };
    if let Some(grants) = &grants {
        check_allowed(config, grants)?;
    }
    Ok(match grants {
        None if owner == bucket_owner => None,
        None => Some(ObjectAcl {
            owner: owner.to_string(),
            grants: vec![owner_full_control(owner)],
        }),
        Some(grants) => Some(ObjectAcl {
            owner: owner.to_string(),
            grants,
        }),
    })
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
    // Group grants first, then accounts', each in the order set: as S3 and
    // RGW list them (clients index the owner's grant after the groups').
    let groups = grants
        .iter()
        .filter(|g| !matches!(g.grantee, Grantee::Account(_)));
    let accounts = grants
        .iter()
        .filter(|g| matches!(g.grantee, Grantee::Account(_)));
    let shown = groups
        .chain(accounts)
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
    owner: &str,
    bucket_owner: &str,
) -> S3Result<Vec<Grant>> {
    match (requested(headers, owner, bucket_owner)?, body) {
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
    let (owner, grants) = to_dto(&store, config.owner(), &config.grants());
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
    refuse_if_enforced(&config, None)?;
    let grants = put_grants(
        &req.headers,
        input.access_control_policy.as_ref(),
        config.owner(),
        config.owner(),
    )?;
    check_grantees(&store, &grants)?;
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
        None => to_dto(
            &store,
            config.owner(),
            &[owner_full_control(config.owner())],
        ),
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
    refuse_if_enforced(&config, None)?;
    let owner = entry
        .meta
        .acl()
        .map_or(config.owner(), |a| a.owner.as_str())
        .to_string();
    let grants = put_grants(
        &req.headers,
        input.access_control_policy.as_ref(),
        &owner,
        config.owner(),
    )?;
    check_grantees(&store, &grants)?;
    check_allowed(&config, &grants)?;
    // The default (the bucket owner's object, its full control alone) is
    // kept as no ACL at all.
    let default = owner == config.owner() && grants == [owner_full_control(&owner)];
    let acl = (!default).then_some(ObjectAcl { owner, grants });
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
