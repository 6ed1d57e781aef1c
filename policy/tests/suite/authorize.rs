//! The combination rules of `authorize`, one rule per test.

use policy::{authorize, Authorization, Context, Policy, Principal, Request, Verdict};

use crate::{alice, bucket, doc, identity, A, B};

struct Ask<'a> {
    principal: Principal,
    action: &'a str,
    resource: &'a str,
    identity: Vec<Policy>,
    owner: Option<&'a str>,
    bucket: Option<Policy>,
    acl: bool,
}

impl<'a> Ask<'a> {
    fn new(principal: Principal, action: &'a str, owner: Option<&'a str>) -> Ask<'a> {
        Ask {
            principal,
            action,
            resource: if owner.is_some() {
                "arn:aws:s3:::b/k"
            } else {
                "*"
            },
            identity: Vec::new(),
            owner,
            bucket: None,
            acl: false,
        }
    }

    fn identity(mut self, json: &str) -> Self {
        self.identity.push(identity(json));
        self
    }

    fn bucket(mut self, json: &str) -> Self {
        self.bucket = Some(bucket(json));
        self
    }

    fn acl(mut self) -> Self {
        self.acl = true;
        self
    }

    fn verdict(&self) -> Verdict {
        let context = Context::new();
        let request = Request {
            principal: &self.principal,
            action: self.action,
            resource: self.resource,
            context: &context,
        };
        let identity: Vec<&Policy> = self.identity.iter().collect();
        authorize(&Authorization {
            request: &request,
            identity_policies: &identity,
            resource_owner: self.owner,
            bucket_policy: self.bucket.as_ref(),
            acl_grants: self.acl,
        })
    }
}

const ALLOW_ALL: &str = r#"{"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}"#;
const DENY_ALL: &str = r#"{"Statement": {"Effect": "Deny", "Action": "*", "Resource": "*"}}"#;

fn bucket_allows(principal: &str) -> String {
    doc(&format!(
        r#"{{"Effect": "Allow", "Principal": {principal}, "Action": "s3:*", "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]}}"#
    ))
}

fn bucket_denies_everyone() -> String {
    doc(
        r#"{"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]}"#,
    )
}

#[test]
fn an_explicit_deny_anywhere_denies() {
    let get = "s3:GetObject";
    let ask = Ask::new(alice(), get, Some(A))
        .identity(ALLOW_ALL)
        .identity(DENY_ALL);
    assert_eq!(
        ask.verdict(),
        Verdict::ExplicitDeny,
        "one identity policy denies"
    );
    let ask = Ask::new(alice(), get, Some(A))
        .identity(ALLOW_ALL)
        .bucket(&bucket_denies_everyone())
        .acl();
    assert_eq!(
        ask.verdict(),
        Verdict::ExplicitDeny,
        "the bucket policy denies"
    );
    let ask = Ask::new(Principal::root(A), get, Some(A)).bucket(&bucket_denies_everyone());
    assert_eq!(
        ask.verdict(),
        Verdict::ExplicitDeny,
        "even the owner's root"
    );
    let ask = Ask::new(Principal::Anonymous, get, Some(A))
        .bucket(&bucket_denies_everyone())
        .acl();
    assert_eq!(ask.verdict(), Verdict::ExplicitDeny, "over an ACL grant");
}

#[test]
fn the_owners_root_can_always_manage_the_bucket_policy() {
    for action in [
        "s3:GetBucketPolicy",
        "s3:PutBucketPolicy",
        "S3:deletebucketpolicy",
    ] {
        let mut ask =
            Ask::new(Principal::root(A), action, Some(A)).bucket(&bucket_denies_everyone());
        ask.resource = "arn:aws:s3:::b";
        assert_eq!(ask.verdict(), Verdict::Allowed, "{action}");
        // Nobody else is spared: not a user of the account, not another root.
        let mut user = Ask::new(alice(), action, Some(A))
            .identity(ALLOW_ALL)
            .bucket(&bucket_denies_everyone());
        user.resource = "arn:aws:s3:::b";
        assert_eq!(user.verdict(), Verdict::ExplicitDeny, "{action}");
        let mut other =
            Ask::new(Principal::root(B), action, Some(A)).bucket(&bucket_denies_everyone());
        other.resource = "arn:aws:s3:::b";
        assert_eq!(other.verdict(), Verdict::ExplicitDeny, "{action}");
    }
}

#[test]
fn a_root_may_do_anything_in_its_own_account() {
    let root = || Principal::root(A);
    assert_eq!(
        Ask::new(root(), "s3:DeleteBucket", Some(A)).verdict(),
        Verdict::Allowed
    );
    assert_eq!(
        Ask::new(root(), "s3:CreateBucket", None).verdict(),
        Verdict::Allowed
    );
    assert_eq!(
        Ask::new(root(), "admin:CreateUser", None).verdict(),
        Verdict::Allowed
    );
    assert_eq!(
        Ask::new(root(), "s3:GetObject", Some(B)).verdict(),
        Verdict::ImplicitDeny
    );
}

#[test]
fn within_an_account_any_one_grant_suffices() {
    let get = "s3:GetObject";
    assert_eq!(
        Ask::new(alice(), get, Some(A)).verdict(),
        Verdict::ImplicitDeny
    );
    let by_identity = Ask::new(alice(), get, Some(A)).identity(ALLOW_ALL);
    assert_eq!(by_identity.verdict(), Verdict::Allowed);
    let by_bucket = Ask::new(alice(), get, Some(A)).bucket(&bucket_allows(&format!(
        r#"{{"AWS": "arn:aws:iam::{A}:user/alice"}}"#
    )));
    assert_eq!(by_bucket.verdict(), Verdict::Allowed);
    assert_eq!(
        Ask::new(alice(), get, Some(A)).acl().verdict(),
        Verdict::Allowed
    );
    // Actions on no bucket belong to the caller's account: identity decides.
    assert_eq!(
        Ask::new(alice(), "s3:ListAllMyBuckets", None).verdict(),
        Verdict::ImplicitDeny
    );
    let listed = Ask::new(alice(), "s3:ListAllMyBuckets", None).identity(ALLOW_ALL);
    assert_eq!(listed.verdict(), Verdict::Allowed);
}

#[test]
fn across_accounts_both_sides_must_allow() {
    let get = "s3:GetObject";
    let carol = || Principal::user(B, "carol");
    let grant_b = bucket_allows(&format!(r#"{{"AWS": "{B}"}}"#));
    assert_eq!(
        Ask::new(carol(), get, Some(A))
            .identity(ALLOW_ALL)
            .verdict(),
        Verdict::ImplicitDeny,
        "identity alone"
    );
    assert_eq!(
        Ask::new(carol(), get, Some(A)).bucket(&grant_b).verdict(),
        Verdict::ImplicitDeny,
        "bucket alone"
    );
    let both = Ask::new(carol(), get, Some(A))
        .identity(ALLOW_ALL)
        .bucket(&grant_b);
    assert_eq!(both.verdict(), Verdict::Allowed);
    let acl_and_identity = Ask::new(carol(), get, Some(A)).identity(ALLOW_ALL).acl();
    assert_eq!(acl_and_identity.verdict(), Verdict::Allowed);
    // Another account's root needs only the bucket side.
    let root_b = Ask::new(Principal::root(B), get, Some(A)).bucket(&grant_b);
    assert_eq!(root_b.verdict(), Verdict::Allowed);
    assert_eq!(
        Ask::new(Principal::root(B), get, Some(A)).acl().verdict(),
        Verdict::Allowed
    );
    assert_eq!(
        Ask::new(Principal::root(B), get, Some(A)).verdict(),
        Verdict::ImplicitDeny
    );
}

#[test]
fn anonymous_callers_need_the_bucket_side() {
    let get = "s3:GetObject";
    let anon = || Principal::Anonymous;
    assert_eq!(
        Ask::new(anon(), get, Some(A)).verdict(),
        Verdict::ImplicitDeny
    );
    let public = Ask::new(anon(), get, Some(A)).bucket(&bucket_allows(r#""*""#));
    assert_eq!(public.verdict(), Verdict::Allowed);
    let account_only =
        Ask::new(anon(), get, Some(A)).bucket(&bucket_allows(&format!(r#"{{"AWS": "{A}"}}"#)));
    assert_eq!(account_only.verdict(), Verdict::ImplicitDeny);
    assert_eq!(
        Ask::new(anon(), get, Some(A)).acl().verdict(),
        Verdict::Allowed
    );
    assert_eq!(
        Ask::new(anon(), "s3:ListAllMyBuckets", None).verdict(),
        Verdict::ImplicitDeny
    );
    assert!(!Verdict::ImplicitDeny.is_allowed());
    assert!(Verdict::Allowed.is_allowed());
}

#[test]
fn without_an_owner_there_is_no_bucket_side() {
    let list = "s3:ListAllMyBuckets";
    let acl_only = Ask::new(Principal::Anonymous, list, None).acl();
    assert_eq!(acl_only.verdict(), Verdict::ImplicitDeny);
    let everyone = doc(r#"{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}"#);
    let policy_only = Ask::new(Principal::Anonymous, list, None).bucket(&everyone);
    assert_eq!(policy_only.verdict(), Verdict::ImplicitDeny);
    let nobody = doc(r#"{"Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*"}"#);
    let ignored_deny = Ask::new(alice(), list, None)
        .identity(ALLOW_ALL)
        .bucket(&nobody);
    assert_eq!(ignored_deny.verdict(), Verdict::Allowed);
}
