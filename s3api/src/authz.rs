//! The one place that decides who may do what (DESIGN.md, "Who may do
//! what"). Every S3 request passes `Access::check` before its body is read:
//! it names the principal, maps the operation to its IAM action and
//! resource, gathers the condition values, the caller's identity policies,
//! the bucket's policy and ACL (and the object's), and asks
//! `policy::authorize`, AWS's order. The admin API and batch deletes ask
//! the same function, `Access::authorize`. Handlers never check rights.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use axum::http;
use lsm::format::{Grantee, Permission, FIRST_ACCOUNT_ID};
use lsm::{BucketConfig, ObjectEntry, VersionRef};
use parking_lot::Mutex;
use policy::{Context, Policy, PolicyKind, Principal, Request, Verdict};
use s3s::access::{S3Access, S3AccessContext};
use s3s::path::S3Path;
use s3s::{s3_error, S3Error, S3Result};

use crate::identity::{Caller, Keyring};
use crate::request_conditions::{percent_decode, request_context};

/// Where a request came from, set by the connection layer (the address
/// conditions test and whether TLS carried it).
#[derive(Debug, Clone, Copy)]
pub struct ClientInfo {
    pub addr: IpAddr,
    pub tls: bool,
}

/// A request the console makes for a user who proved the secret of this
/// access key at login. Only server code can put it into a request's
/// extensions; a request carrying a signature is judged by the signature.
#[derive(Debug, Clone)]
pub struct SignedInAs(pub String);

/// The access key a request speaks for: its signature's, or, unsigned,
/// the console's signed-in user's.
pub(crate) fn signer(
    credentials: Option<&s3s::auth::Credentials>,
    extensions: &axum::http::Extensions,
) -> Option<String> {
    match credentials {
        Some(credentials) => Some(credentials.access_key.clone()),
        None => extensions.get::<SignedInAs>().map(|s| s.0.clone()),
    }
}

/// What one authorisation needs from the request.
pub(crate) struct Ask<'a> {
    pub caller: &'a Caller,
    pub action: &'a str,
    pub bucket: Option<&'a str>,
    pub key: Option<&'a str>,
    pub version: Option<&'a str>,
    pub context: &'a Context,
}

pub struct Access {
    keyring: Arc<Keyring>,
    store: Arc<OnceLock<lsm::Store>>,
    metrics: Arc<crate::Metrics>,
    /// Parsed policies by their text: bucket policies and identity
    /// policies are parsed once, not per request.
    parsed: Mutex<HashMap<Arc<str>, Arc<Policy>>>,
}

const PARSED_POLICIES_MAX: usize = 4096;

impl Access {
    pub fn new(
        keyring: Arc<Keyring>,
        store: Arc<OnceLock<lsm::Store>>,
        metrics: Arc<crate::Metrics>,
    ) -> Access {
        Access {
            keyring,
            store,
            metrics,
            parsed: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    pub(crate) fn store(&self) -> S3Result<lsm::Store> {
        self.store
            .get()
            .cloned()
            .ok_or_else(|| s3_error!(ServiceUnavailable, "recovery is still running"))
    }

    fn parsed(&self, text: &str, kind: PolicyKind) -> Option<Arc<Policy>> {
        if let Some(p) = self.parsed.lock().get(text) {
            return Some(p.clone());
        }
        // Stored policies were validated when they were put; one that no
        // longer parses (a newer build's stricter rules) grants nothing.
        let policy = Arc::new(Policy::parse(text, kind).ok()?);
        let mut parsed = self.parsed.lock();
        if parsed.len() >= PARSED_POLICIES_MAX {
            parsed.clear();
        }
        parsed.insert(Arc::from(text), policy.clone());
        Some(policy)
    }

    /// The caller's identity policies: built-in ones by name, or the
    /// account's own.
    fn identity_policies(&self, store: &lsm::Store, caller: &Caller) -> Vec<Arc<Policy>> {
        let Some(account) = caller.principal.account() else {
            return Vec::new();
        };
        caller
            .policies
            .iter()
            .filter_map(|name| match policy::builtin(name) {
                Some(p) => Some(Arc::new(p)),
                None => {
                    let text =
                        store.with_iam(|iam| iam.policy(account, name).map(str::to_string))?;
                    self.parsed(&text, PolicyKind::Identity)
                }
            })
            .collect()
    }

    /// AWS's verdict on one request, given its bucket's settings and the
    /// version it names (both looked up once by `authorize`).
    fn verdict(
        &self,
        store: &lsm::Store,
        ask: &Ask<'_>,
        config: Option<&BucketConfig>,
        object: Option<&ObjectEntry>,
    ) -> Verdict {
        let resource = match (ask.bucket, ask.key) {
            (Some(b), Some(k)) => format!("arn:aws:s3:::{b}/{k}"),
            (Some(b), None) => format!("arn:aws:s3:::{b}"),
            _ => "*".to_string(),
        };
        let mut context = ask.context.clone();
        if let Some(entry) = object {
            for (k, v) in entry.meta.tags() {
                context.add(&format!("s3:ExistingObjectTag/{k}"), v.clone());
            }
        }
        let identity = self.identity_policies(store, ask.caller);
        let identity: Vec<&Policy> = identity.iter().map(|p| p.as_ref()).collect();
        let bucket_policy = config
            .and_then(|c| c.policy.as_deref())
            .and_then(|text| self.parsed(text, PolicyKind::Resource));
        // RestrictPublicBuckets: a public bucket policy grants only to the
        // owner's own account.
        let restricted = config.is_some_and(|c| {
            c.public_access_block
                .is_some_and(|b| b.restrict_public_buckets)
                && ask.caller.principal.account() != Some(c.owner())
                && bucket_policy.as_deref().is_some_and(is_public)
        });
        let bucket_policy = bucket_policy.filter(|_| !restricted);
        let acl_grants = config.is_some_and(|c| acl_grants(c, object, ask.caller, ask.action));
        let request = Request {
            principal: &ask.caller.principal,
            action: ask.action,
            resource: &resource,
            context: &context,
        };
        policy::authorize(&policy::Authorization {
            request: &request,
            identity_policies: &identity,
            resource_owner: config.map(|c| resource_owner(c, object, ask.action)),
            bucket_policy: bucket_policy.as_deref(),
            acl_grants,
        })
    }

    /// Allows or refuses one request; a refusal is AccessDenied, counted
    /// by why, and says nothing about whether the resource exists.
    pub(crate) fn authorize(&self, ask: &Ask<'_>) -> S3Result<()> {
        let Some(store) = self.store.get() else {
            return Err(s3_error!(ServiceUnavailable, "recovery is still running"));
        };
        let config = ask.bucket.and_then(|b| store.bucket_config(b).ok());
        // A bucket that does not exist is NoSuchBucket to anyone, as in S3:
        // its handler says so. Only for reads and deletes, which a bucket
        // made between this check and the handler cannot expose (it is
        // empty); a write must pass on the bucket it lands in.
        let harmless = matches!(
            ask.action,
            "s3:GetObject"
                | "s3:GetObjectVersion"
                | "s3:ListBucket"
                | "s3:ListBucketVersions"
                | "s3:GetBucketLocation"
                | "s3:DeleteObject"
                | "s3:DeleteObjectVersion"
                | "s3:DeleteBucket"
        );
        if harmless && ask.bucket.is_some() && config.is_none() {
            return Ok(());
        }
        let object = match (&config, ask.bucket, ask.key) {
            (Some(_), Some(b), Some(k)) => {
                let version =
                    crate::convert::version_ref(ask.version).unwrap_or(VersionRef::Current);
                store.version(b, k, version).ok()
            }
            _ => None,
        };
        // Making tenants is the appliance's own account's business.
        if ask.action == "admin:CreateAccount"
            && ask.caller.principal.account() != Some(FIRST_ACCOUNT_ID)
        {
            self.metrics.access_denied("not_allowed");
            return Err(s3_error!(AccessDenied, "Access Denied"));
        }
        let verdict = self.verdict(store, ask, config.as_ref(), object.as_deref());
        // A missing object is NoSuchKey to a caller who may list the
        // bucket with the key as prefix (it could learn as much from that
        // listing), as in S3; to anyone else it is AccessDenied, which
        // reveals nothing.
        let may_list_it = |key: &str| {
            let listing = ask.context.clone().with("s3:prefix", key);
            let list = Ask {
                action: "s3:ListBucket",
                key: None,
                version: None,
                context: &listing,
                ..*ask
            };
            self.verdict(store, &list, config.as_ref(), None) == Verdict::Allowed
        };
        match verdict {
            Verdict::Allowed => Ok(()),
            Verdict::ExplicitDeny => {
                self.metrics.access_denied("explicit_deny");
                Err(s3_error!(AccessDenied, "Access Denied"))
            }
            Verdict::ImplicitDeny
                if object.is_none()
                    && matches!(ask.action, "s3:GetObject" | "s3:GetObjectVersion")
                    && ask.key.is_some_and(may_list_it) =>
            {
                Ok(())
            }
            Verdict::ImplicitDeny => {
                let reason = match ask.caller.principal {
                    Principal::Anonymous => "anonymous",
                    _ => "not_allowed",
                };
                self.metrics.access_denied(reason);
                Err(s3_error!(AccessDenied, "Access Denied"))
            }
        }
    }
}

/// Whether a bucket policy grants anything to everyone: a statement
/// allowing `*` (AWS's test for "public", without its condition
/// exceptions, so it errs on the side of public).
pub(crate) fn is_public(policy: &Policy) -> bool {
    let anonymous = Principal::Anonymous;
    let context = Context::new();
    [
        "s3:GetObject",
        "s3:ListBucket",
        "s3:PutObject",
        "s3:DeleteObject",
    ]
    .iter()
    .any(|action| {
        policy.resources().any(|resource| {
            let request = Request {
                principal: &anonymous,
                action,
                resource,
                context: &context,
            };
            policy.evaluate(&request) == policy::Effect::Allow
        })
    })
}

/// Who owns what a request acts on. With ACLs on, an object written by
/// another account is that account's (S3's ObjectWriter ownership): reading
/// it, its ACL or its tags needs that owner's grant, as on AWS. The bucket
/// owner keeps what S3 keeps for it: writing and deleting keys, and every
/// bucket-level action.
fn resource_owner<'a>(
    config: &'a BucketConfig,
    object: Option<&'a ObjectEntry>,
    action: &str,
) -> &'a str {
    let of_the_object = matches!(
        action,
        "s3:GetObject"
            | "s3:GetObjectVersion"
            | "s3:GetObjectAcl"
            | "s3:GetObjectVersionAcl"
            | "s3:PutObjectAcl"
            | "s3:PutObjectVersionAcl"
            | "s3:GetObjectTagging"
            | "s3:GetObjectVersionTagging"
            | "s3:PutObjectTagging"
            | "s3:PutObjectVersionTagging"
    );
    let enforced = config.ownership == Some(lsm::format::ObjectOwnership::BucketOwnerEnforced);
    match object.and_then(|o| o.meta.acl()) {
        Some(acl) if of_the_object && !enforced => &acl.owner,
        _ => config.owner(),
    }
}

/// Whether the bucket's (or, for an object action, the object's) ACL gives
/// the caller the permission `action` needs. The owner's full control is
/// implicit; BucketOwnerEnforced turns ACLs off, IgnorePublicAcls ignores
/// grants to everyone.
fn acl_grants(
    config: &BucketConfig,
    object: Option<&ObjectEntry>,
    caller: &Caller,
    action: &str,
) -> bool {
    if config.ownership == Some(lsm::format::ObjectOwnership::BucketOwnerEnforced) {
        return false;
    }
    let ignore_public = config
        .public_access_block
        .is_some_and(|b| b.ignore_public_acls);
    let Some((needed, on_object)) = acl_permission(action) else {
        return false;
    };
    let (owner, grants): (&str, Vec<lsm::format::Grant>) = match (on_object, object) {
        (true, Some(entry)) => match entry.meta.acl() {
            Some(acl) => (&acl.owner, acl.grants.clone()),
            None => (
                config.owner(),
                vec![lsm::owner_full_control(config.owner())],
            ),
        },
        (true, None) => return false,
        (false, _) => (config.owner(), config.grants()),
    };
    let account = caller.principal.account();
    // An object's owner from another account holds full control of it;
    // the bucket owner's root is already allowed by the evaluator.
    if account == Some(owner) && on_object && owner != config.owner() {
        return true;
    }
    // A grant to an account is the account's to delegate: its root holds
    // it, and its users only through their own policies (which the
    // evaluator asks for across accounts). Within the owning account the
    // policies decide alone.
    let delegated = account != Some(config.owner()) || caller.principal.is_root();
    grants.iter().any(|g| {
        let who = match &g.grantee {
            Grantee::Account(id) => delegated && account == Some(id.as_str()),
            Grantee::AllUsers => !ignore_public,
            Grantee::AuthenticatedUsers => !ignore_public && account.is_some(),
        };
        who && (g.permission == needed || g.permission == Permission::FullControl)
    })
}

/// The ACL permission an action needs, and whether the object's ACL (not
/// the bucket's) decides it, as S3 maps them.
fn acl_permission(action: &str) -> Option<(Permission, bool)> {
    Some(match action {
        "s3:ListBucket" | "s3:ListBucketVersions" | "s3:ListBucketMultipartUploads" => {
            (Permission::Read, false)
        }
        "s3:PutObject"
        | "s3:DeleteObject"
        | "s3:DeleteObjectVersion"
        | "s3:AbortMultipartUpload" => (Permission::Write, false),
        "s3:GetBucketAcl" => (Permission::ReadAcp, false),
        "s3:PutBucketAcl" => (Permission::WriteAcp, false),
        "s3:GetObject" | "s3:GetObjectVersion" | "s3:GetObjectAttributes" => {
            (Permission::Read, true)
        }
        "s3:GetObjectAcl" | "s3:GetObjectVersionAcl" => (Permission::ReadAcp, true),
        "s3:PutObjectAcl" | "s3:PutObjectVersionAcl" => (Permission::WriteAcp, true),
        _ => return None,
    })
}

/// The IAM action of an S3 operation (s3s's operation names), given
/// whether it names a version.
pub(crate) fn action_of(op: &str, versioned: bool) -> Option<&'static str> {
    let v = |plain: &'static str, version: &'static str| if versioned { version } else { plain };
    Some(match op {
        "ListBuckets" => "s3:ListAllMyBuckets",
        "CreateBucket" => "s3:CreateBucket",
        "DeleteBucket" => "s3:DeleteBucket",
        "HeadBucket" | "ListObjects" | "ListObjectsV2" => "s3:ListBucket",
        "GetBucketLocation" => "s3:GetBucketLocation",
        "ListObjectVersions" => "s3:ListBucketVersions",
        "ListMultipartUploads" => "s3:ListBucketMultipartUploads",
        "GetBucketVersioning" => "s3:GetBucketVersioning",
        "PutBucketVersioning" => "s3:PutBucketVersioning",
        "GetObjectLockConfiguration" => "s3:GetBucketObjectLockConfiguration",
        "PutObjectLockConfiguration" => "s3:PutBucketObjectLockConfiguration",
        "GetBucketTagging" => "s3:GetBucketTagging",
        "PutBucketTagging" | "DeleteBucketTagging" => "s3:PutBucketTagging",
        "GetBucketLifecycleConfiguration" => "s3:GetLifecycleConfiguration",
        "PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle" => {
            "s3:PutLifecycleConfiguration"
        }
        "GetBucketPolicy" => "s3:GetBucketPolicy",
        "PutBucketPolicy" => "s3:PutBucketPolicy",
        "DeleteBucketPolicy" => "s3:DeleteBucketPolicy",
        "GetBucketPolicyStatus" => "s3:GetBucketPolicyStatus",
        "GetBucketAcl" => "s3:GetBucketAcl",
        "PutBucketAcl" => "s3:PutBucketAcl",
        "GetBucketCors" => "s3:GetBucketCORS",
        "PutBucketCors" | "DeleteBucketCors" => "s3:PutBucketCORS",
        "GetBucketOwnershipControls" => "s3:GetBucketOwnershipControls",
        "PutBucketOwnershipControls" | "DeleteBucketOwnershipControls" => {
            "s3:PutBucketOwnershipControls"
        }
        "GetBucketEncryption" => "s3:GetEncryptionConfiguration",
        "PutBucketEncryption" | "DeleteBucketEncryption" => "s3:PutEncryptionConfiguration",
        "GetPublicAccessBlock" => "s3:GetBucketPublicAccessBlock",
        "PutPublicAccessBlock" | "DeletePublicAccessBlock" => "s3:PutBucketPublicAccessBlock",
        "PutObject"
        | "PostObject"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload" => "s3:PutObject",
        "GetObject" | "HeadObject" => v("s3:GetObject", "s3:GetObjectVersion"),
        "GetObjectAttributes" => v("s3:GetObjectAttributes", "s3:GetObjectVersionAttributes"),
        "DeleteObject" => v("s3:DeleteObject", "s3:DeleteObjectVersion"),
        // Each key is authorised again by the handler.
        "DeleteObjects" => "s3:DeleteObject",
        "AbortMultipartUpload" => "s3:AbortMultipartUpload",
        "ListParts" => "s3:ListMultipartUploadParts",
        "GetObjectAcl" => v("s3:GetObjectAcl", "s3:GetObjectVersionAcl"),
        "PutObjectAcl" => v("s3:PutObjectAcl", "s3:PutObjectVersionAcl"),
        "GetObjectTagging" => v("s3:GetObjectTagging", "s3:GetObjectVersionTagging"),
        "PutObjectTagging" => v("s3:PutObjectTagging", "s3:PutObjectVersionTagging"),
        "DeleteObjectTagging" => v("s3:DeleteObjectTagging", "s3:DeleteObjectVersionTagging"),
        "GetObjectRetention" => "s3:GetObjectRetention",
        "PutObjectRetention" => "s3:PutObjectRetention",
        "GetObjectLegalHold" => "s3:GetObjectLegalHold",
        "PutObjectLegalHold" => "s3:PutObjectLegalHold",
        _ => return None,
    })
}

/// s3s's view of the authoriser: every operation passes `check`.
pub(crate) struct AccessCheck(pub Arc<Access>);

impl AccessCheck {
    fn caller(&self, cx: &mut S3AccessContext<'_>) -> Caller {
        let credentials = cx.credentials().cloned();
        let Some(access_key) = signer(credentials.as_ref(), cx.extensions_mut()) else {
            return anonymous();
        };
        // None: a key removed or disabled after its request was verified.
        self.0.keyring.caller(&access_key).unwrap_or_else(anonymous)
    }
}

pub(crate) fn anonymous() -> Caller {
    Caller {
        principal: Principal::Anonymous,
        policies: Vec::new(),
    }
}

#[async_trait::async_trait]
impl S3Access for AccessCheck {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let caller = self.caller(cx);
        let client = cx.extensions_mut().get::<ClientInfo>().copied();
        let request_id = cx
            .extensions_mut()
            .get::<crate::http::RequestId>()
            .map(|id| id.0.clone());
        let op = cx.s3_op().name();
        let context = request_context(&caller, cx.uri(), cx.headers(), client);
        let (bucket, key) = match cx.s3_path() {
            S3Path::Root => (None, None),
            S3Path::Bucket { bucket } => (Some(bucket.to_string()), None),
            S3Path::Object { bucket, key } => (Some(bucket.to_string()), Some(key.to_string())),
        };
        let version = context.get("s3:VersionId").and_then(|v| v.first()).cloned();
        let Some(action) = action_of(op, version.is_some()) else {
            // Operations Strata does not serve answer NotImplemented from
            // their handler; only the signature matters for them.
            return match caller.principal {
                Principal::Anonymous => Err(s3_error!(AccessDenied, "Access Denied")),
                _ => Ok(()),
            };
        };
        // CreateBucket is an account-level action: the bucket is not the
        // resource owner's yet.
        let on_bucket = match op {
            "CreateBucket" => None,
            _ => bucket.as_deref(),
        };
        let with_id = |mut e: S3Error| {
            if let Some(id) = &request_id {
                e.set_request_id(id.clone());
            }
            e
        };
        self.0
            .authorize(&Ask {
                caller: &caller,
                action,
                bucket: on_bucket,
                key: key.as_deref(),
                version: version.as_deref(),
                context: &context,
            })
            .map_err(with_id)?;
        // A copy also reads its source.
        if let Some(source) = cx
            .headers()
            .get("x-amz-copy-source")
            .and_then(|v| v.to_str().ok())
        {
            if matches!(op, "CopyObject" | "UploadPartCopy") {
                let source = percent_decode(source);
                let (path, source_version) = match source.split_once("?versionId=") {
                    Some((p, v)) => (p.to_string(), Some(v.to_string())),
                    None => (source.clone(), None),
                };
                let path = path.trim_start_matches('/');
                if let Some((b, k)) = path.split_once('/') {
                    let action = match source_version {
                        Some(_) => "s3:GetObjectVersion",
                        None => "s3:GetObject",
                    };
                    self.0
                        .authorize(&Ask {
                            caller: &caller,
                            action,
                            bucket: Some(b),
                            key: Some(k),
                            version: source_version.as_deref(),
                            context: &context,
                        })
                        .map_err(with_id)?;
                }
            }
        }
        cx.extensions_mut().insert(caller);
        cx.extensions_mut().insert(context);
        Ok(())
    }
}

/// The caller that `check` put in a request's extensions.
pub(crate) fn caller_of(extensions: &http::Extensions) -> Caller {
    extensions
        .get::<Caller>()
        .cloned()
        .unwrap_or_else(anonymous)
}

/// The account a caller acts for (the first account for anonymous
/// requests, which never own anything).
pub(crate) fn account_of(caller: &Caller) -> &str {
    caller.principal.account().unwrap_or(FIRST_ACCOUNT_ID)
}
