//! Fixed cases from AWS's documented examples, each with the title of the
//! page it comes from (IAM User Guide, Amazon S3 User Guide). Policies are
//! the documented ones, with names and account ids shortened; the expected
//! verdicts are the outcomes those pages describe.

use policy::{authorize, Authorization, Context, Policy, Principal, Request, Verdict};

use crate::{bucket, doc, identity, A, B};

struct Example {
    source: &'static str,
    /// The policies of the user who asks (a root or anonymous caller has
    /// none).
    identity: Vec<Policy>,
    bucket: Option<Policy>,
    owner: Option<&'static str>,
    requests: Vec<Asked>,
}

struct Asked {
    principal: Principal,
    action: &'static str,
    resource: &'static str,
    context: Context,
    expect: Verdict,
}

fn ask(
    principal: Principal,
    action: &'static str,
    resource: &'static str,
    expect: Verdict,
) -> Asked {
    Asked {
        principal,
        action,
        resource,
        context: Context::new(),
        expect,
    }
}

impl Asked {
    fn with(mut self, key: &str, value: &str) -> Asked {
        self.context.add(key, value);
        self
    }

    fn at(mut self, unix_secs: i64) -> Asked {
        self.context = self.context.with_request_time(unix_secs);
        self
    }
}

use Verdict::{Allowed, ExplicitDeny, ImplicitDeny};

const READWRITE: &str = r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}}"#;

fn examples() -> Vec<Example> {
    let anon = || Principal::Anonymous;
    let alice = || Principal::user(A, "alice");
    vec![
        Example {
            source: "Examples of Amazon S3 bucket policies: restricting access to specific IP addresses",
            identity: vec![],
            bucket: Some(bucket(&doc(
                r#"{"Sid": "IPAllow", "Effect": "Allow", "Principal": "*", "Action": "s3:*",
                    "Resource": "arn:aws:s3:::examplebucket/*",
                    "Condition": {"IpAddress": {"aws:SourceIp": "54.240.143.0/24"},
                                  "NotIpAddress": {"aws:SourceIp": "54.240.143.188/32"}}}"#,
            ))),
            owner: Some(A),
            requests: vec![
                ask(anon(), "s3:GetObject", "arn:aws:s3:::examplebucket/k", Allowed)
                    .with("aws:SourceIp", "54.240.143.7"),
                ask(anon(), "s3:GetObject", "arn:aws:s3:::examplebucket/k", ImplicitDeny)
                    .with("aws:SourceIp", "54.240.143.188"),
                ask(anon(), "s3:GetObject", "arn:aws:s3:::examplebucket/k", ImplicitDeny)
                    .with("aws:SourceIp", "192.0.2.1"),
                ask(anon(), "s3:GetObject", "arn:aws:s3:::examplebucket/k", ImplicitDeny),
            ],
        },
        Example {
            source: "Examples of Amazon S3 bucket policies: managing access based on HTTP or HTTPS requests",
            identity: vec![identity(READWRITE)],
            bucket: Some(bucket(&doc(
                r#"{"Sid": "RestrictToTLSRequestsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                    "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}}}"#,
            ))),
            owner: Some(A),
            requests: vec![
                ask(alice(), "s3:GetObject", "arn:aws:s3:::b/k", ExplicitDeny)
                    .with("aws:SecureTransport", "false"),
                ask(alice(), "s3:GetObject", "arn:aws:s3:::b/k", Allowed)
                    .with("aws:SecureTransport", "true"),
            ],
        },
        Example {
            source: "Bucket policy examples using condition keys: limiting ListBucket to a prefix (s3:prefix)",
            identity: vec![],
            bucket: Some(bucket(&doc(&format!(
                r#"{{"Sid": "AllowListProjects", "Effect": "Allow",
                     "Principal": {{"AWS": "arn:aws:iam::{A}:user/Dave"}}, "Action": "s3:ListBucket",
                     "Resource": "arn:aws:s3:::amzn-s3-demo-bucket",
                     "Condition": {{"StringEquals": {{"s3:prefix": "projects"}}}}}},
                   {{"Sid": "DenyOtherPrefixes", "Effect": "Deny",
                     "Principal": {{"AWS": "arn:aws:iam::{A}:user/Dave"}}, "Action": "s3:ListBucket",
                     "Resource": "arn:aws:s3:::amzn-s3-demo-bucket",
                     "Condition": {{"StringNotEquals": {{"s3:prefix": "projects"}}}}}}"#
            )))),
            owner: Some(A),
            requests: vec![
                ask(Principal::user(A, "Dave"), "s3:ListBucket", "arn:aws:s3:::amzn-s3-demo-bucket", Allowed)
                    .with("s3:prefix", "projects"),
                ask(Principal::user(A, "Dave"), "s3:ListBucket", "arn:aws:s3:::amzn-s3-demo-bucket", ExplicitDeny)
                    .with("s3:prefix", "finance"),
                // No prefix at all: the negated condition holds, so the Deny applies.
                ask(Principal::user(A, "Dave"), "s3:ListBucket", "arn:aws:s3:::amzn-s3-demo-bucket", ExplicitDeny),
            ],
        },
        Example {
            source: "Tagging and access control policies: s3:ExistingObjectTag",
            identity: vec![identity(&doc(
                r#"{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::amzn-s3-demo-bucket/*",
                    "Condition": {"StringEquals": {"s3:ExistingObjectTag/environment": "production"}}}"#,
            ))],
            bucket: None,
            owner: Some(A),
            requests: vec![
                ask(alice(), "s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket/k", Allowed)
                    .with("s3:ExistingObjectTag/environment", "production"),
                ask(alice(), "s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket/k", ImplicitDeny)
                    .with("s3:ExistingObjectTag/environment", "dev"),
                ask(alice(), "s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket/k", ImplicitDeny),
            ],
        },
        Example {
            source: "Tagging and access control policies: s3:RequestObjectTagKeys with ForAllValues",
            identity: vec![identity(&doc(
                r#"{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::amzn-s3-demo-bucket/*",
                    "Condition": {"ForAllValues:StringLike": {"s3:RequestObjectTagKeys": ["Owner", "CreationDate"]}}}"#,
            ))],
            bucket: None,
            owner: Some(A),
            requests: vec![
                ask(alice(), "s3:PutObject", "arn:aws:s3:::amzn-s3-demo-bucket/k", Allowed)
                    .with("s3:RequestObjectTagKeys", "Owner"),
                ask(alice(), "s3:PutObject", "arn:aws:s3:::amzn-s3-demo-bucket/k", ImplicitDeny)
                    .with("s3:RequestObjectTagKeys", "Owner")
                    .with("s3:RequestObjectTagKeys", "Project"),
                // An upload without tags satisfies ForAllValues (the page warns of it).
                ask(alice(), "s3:PutObject", "arn:aws:s3:::amzn-s3-demo-bucket/k", Allowed),
            ],
        },
        Example {
            source: "Examples of Amazon S3 bucket policies: requiring server-side encryption (DenyIncorrectEncryptionHeader, DenyUnEncryptedObjectUploads)",
            identity: vec![identity(READWRITE)],
            bucket: Some(bucket(&doc(
                r#"{"Sid": "DenyIncorrectEncryptionHeader", "Effect": "Deny", "Principal": "*",
                    "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/*",
                    "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "AES256"}}},
                   {"Sid": "DenyUnEncryptedObjectUploads", "Effect": "Deny", "Principal": "*",
                    "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/*",
                    "Condition": {"Null": {"s3:x-amz-server-side-encryption": "true"}}}"#,
            ))),
            owner: Some(A),
            requests: vec![
                ask(alice(), "s3:PutObject", "arn:aws:s3:::b/k", Allowed)
                    .with("s3:x-amz-server-side-encryption", "AES256"),
                ask(alice(), "s3:PutObject", "arn:aws:s3:::b/k", ExplicitDeny)
                    .with("s3:x-amz-server-side-encryption", "aws:kms"),
                ask(alice(), "s3:PutObject", "arn:aws:s3:::b/k", ExplicitDeny),
                ask(alice(), "s3:GetObject", "arn:aws:s3:::b/k", Allowed),
            ],
        },
        Example {
            source: "Examples of Amazon S3 bucket policies: restricting access to a specific HTTP referer",
            identity: vec![],
            bucket: Some(bucket(&doc(
                r#"{"Sid": "AllowGetRequestsReferredByWwwExampleCom", "Effect": "Allow", "Principal": "*",
                    "Action": ["s3:GetObject", "s3:GetObjectVersion"], "Resource": "arn:aws:s3:::b/*",
                    "Condition": {"StringLike": {"aws:Referer": ["http://www.example.com/*", "http://example.com/*"]}}}"#,
            ))),
            owner: Some(A),
            requests: vec![
                ask(anon(), "s3:GetObject", "arn:aws:s3:::b/k", Allowed)
                    .with("aws:Referer", "http://www.example.com/index.html"),
                ask(anon(), "s3:GetObject", "arn:aws:s3:::b/k", ImplicitDeny)
                    .with("aws:Referer", "http://evil.example.net/"),
                ask(anon(), "s3:GetObject", "arn:aws:s3:::b/k", ImplicitDeny),
            ],
        },
        Example {
            source: "Examples of Amazon S3 bucket policies: granting read-only permission to a public anonymous user",
            identity: vec![],
            bucket: Some(bucket(&doc(
                r#"{"Sid": "PublicRead", "Effect": "Allow", "Principal": "*",
                    "Action": ["s3:GetObject", "s3:GetObjectVersion"], "Resource": "arn:aws:s3:::b/*"}"#,
            ))),
            owner: Some(A),
            requests: vec![
                ask(anon(), "s3:GetObject", "arn:aws:s3:::b/k", Allowed),
                ask(anon(), "s3:PutObject", "arn:aws:s3:::b/k", ImplicitDeny),
                ask(anon(), "s3:ListBucket", "arn:aws:s3:::b", ImplicitDeny),
                ask(Principal::user(B, "carol"), "s3:GetObject", "arn:aws:s3:::b/k", ImplicitDeny),
            ],
        },
        Example {
            source: "Policy evaluation for requests within a single account: example identity-based and resource-based policy evaluation (carlossalazar)",
            identity: vec![identity(
                r#"{"Version": "2012-10-17", "Statement": [
                    {"Sid": "AllowS3ListRead", "Effect": "Allow",
                     "Action": ["s3:GetBucketLocation", "s3:GetAccountPublicAccessBlock", "s3:ListAccessPoints", "s3:ListAllMyBuckets"],
                     "Resource": "arn:aws:s3:::*"},
                    {"Sid": "AllowS3Self", "Effect": "Allow", "Action": "s3:*",
                     "Resource": ["arn:aws:s3:::amzn-s3-demo-bucket-carlossalazar/*", "arn:aws:s3:::amzn-s3-demo-bucket-carlossalazar"]},
                    {"Sid": "DenyS3Logs", "Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::*log*"}]}"#,
            )],
            bucket: Some(bucket(&doc(&format!(
                r#"{{"Effect": "Deny", "NotPrincipal": {{"AWS": "arn:aws:iam::{A}:user/carlossalazar"}},
                     "Action": "s3:*", "Resource": "arn:aws:s3:::amzn-s3-demo-bucket-carlossalazar/*"}}"#
            )))),
            owner: Some(A),
            requests: vec![
                ask(Principal::user(A, "carlossalazar"), "s3:PutObject", "arn:aws:s3:::amzn-s3-demo-bucket-carlossalazar-logs/f", ExplicitDeny),
                ask(Principal::user(A, "carlossalazar"), "s3:PutObject", "arn:aws:s3:::amzn-s3-demo-bucket-carlossalazar/f", Allowed),
                ask(Principal::user(A, "carlossalazar"), "s3:ListAllMyBuckets", "*", Allowed),
                ask(anon(), "s3:GetObject", "arn:aws:s3:::amzn-s3-demo-bucket-carlossalazar/f", ExplicitDeny),
            ],
        },
        Example {
            source: "Cross-account policy evaluation logic: the bucket policy and the caller's identity policy must both allow",
            // Alice (account A) reads from a bucket of account B.
            identity: vec![identity(&doc(
                r#"{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::shared/*"}"#,
            ))],
            bucket: Some(bucket(&doc(&format!(
                r#"{{"Effect": "Allow", "Principal": {{"AWS": "arn:aws:iam::{A}:root"}},
                     "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "arn:aws:s3:::shared/*"}}"#
            )))),
            owner: Some(B),
            requests: vec![
                ask(alice(), "s3:GetObject", "arn:aws:s3:::shared/k", Allowed),
                // The bucket allows PutObject to account A, alice's own policy does not.
                ask(alice(), "s3:PutObject", "arn:aws:s3:::shared/k", ImplicitDeny),
                ask(Principal::root(A), "s3:PutObject", "arn:aws:s3:::shared/k", Allowed),
                ask(anon(), "s3:GetObject", "arn:aws:s3:::shared/k", ImplicitDeny),
            ],
        },
        Example {
            source: "IAM JSON policy elements: Condition operators, date condition operators (aws:CurrentTime)",
            identity: vec![identity(&doc(
                r#"{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
                    "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2020-04-01T00:00:00Z"},
                                  "DateLessThan": {"aws:CurrentTime": "2020-06-30T23:59:59Z"}}}"#,
            ))],
            bucket: None,
            owner: Some(A),
            requests: vec![
                ask(alice(), "s3:GetObject", "arn:aws:s3:::b/k", Allowed).at(1_590_000_000),
                ask(alice(), "s3:GetObject", "arn:aws:s3:::b/k", ImplicitDeny).at(1_600_000_000),
                ask(alice(), "s3:GetObject", "arn:aws:s3:::b/k", ImplicitDeny).at(1_580_000_000),
                ask(alice(), "s3:GetObject", "arn:aws:s3:::b/k", ImplicitDeny),
            ],
        },
        Example {
            source: "Amazon S3: Allows IAM users access to their S3 home directory, programmatically and in the console",
            identity: vec![identity(&doc(
                r#"{"Sid": "AllowListingOfUserFolder", "Effect": "Allow", "Action": "s3:ListBucket",
                    "Resource": "arn:aws:s3:::amzn-s3-demo-bucket",
                    "Condition": {"StringLike": {"s3:prefix": ["${aws:username}/*", "${aws:username}"]}}},
                   {"Sid": "AllowAllS3ActionsInUserFolder", "Effect": "Allow", "Action": "s3:*",
                    "Resource": "arn:aws:s3:::amzn-s3-demo-bucket/${aws:username}/*"}"#,
            ))],
            bucket: None,
            owner: Some(A),
            requests: vec![
                ask(alice(), "s3:ListBucket", "arn:aws:s3:::amzn-s3-demo-bucket", Allowed)
                    .with("s3:prefix", "alice/photos/"),
                ask(alice(), "s3:ListBucket", "arn:aws:s3:::amzn-s3-demo-bucket", ImplicitDeny)
                    .with("s3:prefix", "bob/"),
                ask(alice(), "s3:PutObject", "arn:aws:s3:::amzn-s3-demo-bucket/alice/a.jpg", Allowed),
                ask(alice(), "s3:PutObject", "arn:aws:s3:::amzn-s3-demo-bucket/bob/a.jpg", ImplicitDeny),
            ],
        },
    ]
}

#[test]
fn documented_examples_give_the_documented_verdicts() {
    let mut failures = Vec::new();
    let examples = examples();
    for example in &examples {
        for asked in &example.requests {
            let identity: Vec<&Policy> = match asked.principal.user_name() {
                Some(_) => example.identity.iter().collect(),
                None => Vec::new(),
            };
            let request = Request {
                principal: &asked.principal,
                action: asked.action,
                resource: asked.resource,
                context: &asked.context,
            };
            let got = authorize(&Authorization {
                request: &request,
                identity_policies: &identity,
                resource_owner: example.owner,
                bucket_policy: example.bucket.as_ref(),
                acl_grants: false,
            });
            if got != asked.expect {
                failures.push(format!(
                    "{}: {:?} {} {} {:?}: got {got:?}, expected {:?}",
                    example.source,
                    asked.principal,
                    asked.action,
                    asked.resource,
                    asked.context,
                    asked.expect
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(examples.len() >= 10);
}
