//! The cost of one authorisation with a 20-statement bucket policy and two
//! identity policies, as the server pays it per request (the policies are
//! parsed once and cached by the server, so parsing is timed apart).
//! `cargo bench -p policy --bench authorize` (release build).

use std::hint::black_box;
use std::time::Instant;

use policy::{authorize, Authorization, Context, Policy, PolicyKind, Principal, Request};

fn bucket_policy() -> String {
    let mut statements = Vec::new();
    for i in 0..19 {
        statements.push(format!(
            r#"{{"Sid": "s{i}", "Effect": "Allow",
                "Principal": {{"AWS": "arn:aws:iam::1111111111{i:02}:user/u{i}"}},
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": "arn:aws:s3:::bench/team-{i}/*",
                "Condition": {{"IpAddress": {{"aws:SourceIp": "10.{i}.0.0/16"}},
                              "StringLike": {{"s3:prefix": ["team-{i}/*"]}}}}}}"#
        ));
    }
    statements.push(
        r#"{"Sid": "tls", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": "arn:aws:s3:::bench/*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}"#
            .to_string(),
    );
    format!(
        r#"{{"Version": "2012-10-17", "Statement": [{}]}}"#,
        statements.join(",")
    )
}

fn main() {
    let text = bucket_policy();
    let started = Instant::now();
    let rounds = 10_000;
    for _ in 0..rounds {
        black_box(Policy::parse(black_box(&text), PolicyKind::Resource).is_ok());
    }
    let parse_ns = started.elapsed().as_nanos() as f64 / rounds as f64;
    let bucket = Policy::parse(&text, PolicyKind::Resource).expect("bench policy parses");
    let readwrite = policy::builtin("readwrite").expect("built-in");
    let readonly = policy::builtin("readonly").expect("built-in");
    let identity = [&readwrite, &readonly];
    // Statement 3 grants this user team-3 (half the requests).
    let principal = Principal::user("111111111103", "u3");
    let context = Context::new()
        .with_request_time(1_765_000_000)
        .with("aws:SourceIp", "10.3.4.5")
        .with("aws:SecureTransport", "true")
        .with("s3:prefix", "team-3/x");
    let rounds = 1_000_000;
    let started = Instant::now();
    let mut allowed = 0u64;
    for i in 0..rounds {
        let resource = if i % 2 == 0 {
            "arn:aws:s3:::bench/team-3/object"
        } else {
            "arn:aws:s3:::bench/team-7/object"
        };
        let request = Request {
            principal: &principal,
            action: "s3:GetObject",
            resource,
            context: &context,
        };
        let verdict = authorize(&Authorization {
            request: black_box(&request),
            identity_policies: &identity,
            resource_owner: Some("111111111111"),
            bucket_policy: Some(&bucket),
            acl_grants: false,
        });
        allowed += u64::from(verdict.is_allowed());
    }
    let authorize_ns = started.elapsed().as_nanos() as f64 / rounds as f64;
    println!(
        "20-statement bucket policy: parse {:.1} us; authorize {:.0} ns per request ({} of {} allowed)",
        parse_ns / 1000.0,
        authorize_ns,
        allowed,
        rounds
    );
}
