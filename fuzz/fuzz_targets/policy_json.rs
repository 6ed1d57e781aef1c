//! Policy documents from arbitrary bytes, as both an identity and a bucket
//! policy: parsing never panics; a document that parses evaluates against a
//! fixed set of requests without panicking, and `authorize` keeps its
//! promises on each: the owner's root can always manage the bucket policy,
//! an explicit Deny in either policy denies everyone else, and nothing is
//! allowed that no policy, ACL or root right allows.

#![no_main]

use libfuzzer_sys::fuzz_target;
use policy::{
    authorize, Authorization, Context, Effect, Policy, PolicyError, PolicyKind, Principal, Request,
    Verdict, MAX_POLICY_BYTES, OWNER_ALWAYS_ALLOWED,
};

const OWNER: &str = "111122223333";
const OTHER: &str = "444455556666";
const ACTIONS: [&str; 5] = [
    "s3:GetObject",
    "s3:ListBucket",
    "s3:PutBucketPolicy",
    "admin:CreateUser",
    "kms:Decrypt",
];
const RESOURCES: [&str; 3] = ["arn:aws:s3:::b/home/alice/k", "arn:aws:s3:::b", "*"];

fn principals() -> [Principal; 5] {
    [
        Principal::Anonymous,
        Principal::root(OWNER),
        Principal::user(OWNER, "alice"),
        Principal::root(OTHER),
        Principal::user(OTHER, "carol"),
    ]
}

fn contexts() -> [Context; 2] {
    let full = Context::new()
        .with_request_time(1_700_000_000)
        .with("aws:SourceIp", "192.0.2.10")
        .with("aws:SecureTransport", "true")
        .with("aws:Referer", "http://www.example.com/")
        .with("aws:UserAgent", "aws-cli/2")
        .with("s3:prefix", "home/alice/")
        .with("s3:delimiter", "/")
        .with("s3:max-keys", "100")
        .with("s3:x-amz-server-side-encryption", "AES256")
        .with("s3:RequestObjectTagKeys", "Owner")
        .with("s3:RequestObjectTagKeys", "Project")
        .with("s3:ExistingObjectTag/environment", "production");
    [Context::new(), full]
}

fn check(identity: Option<&Policy>, bucket: Option<&Policy>) {
    let contexts = contexts();
    for principal in &principals() {
        for action in ACTIONS {
            for resource in RESOURCES {
                for context in &contexts {
                    let request = Request {
                        principal,
                        action,
                        resource,
                        context,
                    };
                    let identity_effect =
                        identity.map_or(Effect::NotApplicable, |p| p.evaluate(&request));
                    let bucket_effect =
                        bucket.map_or(Effect::NotApplicable, |p| p.evaluate(&request));
                    let policies: Vec<&Policy> = identity.into_iter().collect();
                    for owner in [None, Some(OWNER)] {
                        for acl in [false, true] {
                            let verdict = authorize(&Authorization {
                                request: &request,
                                identity_policies: &policies,
                                resource_owner: owner,
                                bucket_policy: bucket,
                                acl_grants: acl,
                            });
                            let owner_root = owner.is_some()
                                && principal.is_root()
                                && principal.account() == owner;
                            let deny = identity_effect == Effect::ExplicitDeny
                                || (owner.is_some() && bucket_effect == Effect::ExplicitDeny);
                            if owner_root && OWNER_ALWAYS_ALLOWED.contains(&action) {
                                assert_eq!(verdict, Verdict::Allowed, "{request:?}");
                            } else if deny {
                                assert_eq!(verdict, Verdict::ExplicitDeny, "{request:?}");
                            }
                            let some_grant = principal.is_root()
                                || identity_effect == Effect::Allow
                                || (owner.is_some() && (acl || bucket_effect == Effect::Allow));
                            if verdict == Verdict::Allowed {
                                assert!(some_grant, "allowed by nothing: {request:?}");
                            }
                        }
                    }
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for kind in [PolicyKind::Identity, PolicyKind::Resource] {
        match Policy::parse(text, kind) {
            Ok(policy) => {
                assert!(text.len() <= MAX_POLICY_BYTES);
                assert_eq!(Policy::parse(text, kind).as_ref(), Ok(&policy));
                for resource in policy.resources() {
                    assert!(resource == "*" || resource.starts_with("arn:aws:s3:::"));
                }
                match kind {
                    PolicyKind::Identity => check(Some(&policy), None),
                    PolicyKind::Resource => check(None, Some(&policy)),
                }
            }
            Err(PolicyError::TooLarge { .. }) => assert!(text.len() > MAX_POLICY_BYTES),
            Err(PolicyError::Malformed(message)) => assert!(!message.is_empty()),
        }
    }
});
