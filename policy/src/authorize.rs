//! The final answer for a request: the caller's identity policies, the
//! bucket policy and the ACL combined in AWS's order ("Policy evaluation
//! logic", "Cross-account policy evaluation logic").

use crate::evaluate::Effect;
use crate::parse::Policy;
use crate::request::{Principal, Request};

/// Actions the root of a bucket's owning account may always take on it,
/// whatever the bucket policy says, so that no policy locks the owner out.
pub const OWNER_ALWAYS_ALLOWED: &[&str] = &[
    "s3:GetBucketPolicy",
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
];

/// Everything the decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct Authorization<'a> {
    pub request: &'a Request<'a>,
    /// The policies attached to the calling user; empty for a root or an
    /// anonymous caller.
    pub identity_policies: &'a [&'a Policy],
    /// The account owning the bucket (or the bucket holding the object);
    /// None for actions on no bucket (ListAllMyBuckets, CreateBucket, admin
    /// actions), which are the caller's own account's business: then the
    /// bucket policy and the ACL are ignored.
    pub resource_owner: Option<&'a str>,
    pub bucket_policy: Option<&'a Policy>,
    /// Whether the bucket's or object's ACL grants this request (computed by
    /// the server, which knows the grants and which permission each action
    /// needs).
    pub acl_grants: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    Allowed,
    /// A policy denies it: no grant anywhere overrides this.
    ExplicitDeny,
    /// Nothing allows it.
    ImplicitDeny,
}

impl Verdict {
    pub fn is_allowed(self) -> bool {
        self == Verdict::Allowed
    }
}

pub fn authorize(input: &Authorization<'_>) -> Verdict {
    let request = input.request;
    let principal = request.principal;
    let caller_account = principal.account();
    // No owner: an account-level action, taken on the caller's own account.
    let owner = input.resource_owner.or(caller_account);
    let same_account = caller_account.is_some() && caller_account == owner;

    if same_account
        && principal.is_root()
        && OWNER_ALWAYS_ALLOWED
            .iter()
            .any(|a| a.eq_ignore_ascii_case(request.action))
    {
        return Verdict::Allowed;
    }

    let identity = input
        .identity_policies
        .iter()
        .fold(Effect::NotApplicable, |e, p| e.combine(p.evaluate(request)));
    // A bucket policy and an ACL belong to a bucket: with no owner there is
    // no bucket, whatever the caller passed.
    let has_bucket = input.resource_owner.is_some();
    let bucket = input
        .bucket_policy
        .filter(|_| has_bucket)
        .map_or(Effect::NotApplicable, |p| p.evaluate(request));
    if identity == Effect::ExplicitDeny || bucket == Effect::ExplicitDeny {
        return Verdict::ExplicitDeny;
    }

    let bucket_side = bucket == Effect::Allow || (has_bucket && input.acl_grants);
    let allowed = match principal {
        // A root may do anything in its own account.
        Principal::Authenticated { user: None, .. } if same_account => true,
        Principal::Authenticated { .. } if same_account => identity == Effect::Allow || bucket_side,
        // Another account's root speaks for its whole account: only the
        // bucket side must agree.
        Principal::Authenticated { user: None, .. } => bucket_side,
        // Cross-account: both accounts must agree.
        Principal::Authenticated { .. } => bucket_side && identity == Effect::Allow,
        Principal::Anonymous => bucket_side,
    };
    if allowed {
        Verdict::Allowed
    } else {
        Verdict::ImplicitDeny
    }
}
