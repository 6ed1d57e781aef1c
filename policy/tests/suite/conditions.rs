//! Each condition operator, the set qualifiers, IfExists and Null, one
//! behaviour per test, through an Allow statement whose only question is
//! its Condition.

use policy::{Context, Effect, Principal};

use crate::{alice, doc, evaluate, identity};

/// Whether `condition` (a Condition element's JSON) holds for alice with
/// `context`.
fn holds_for(principal: &Principal, condition: &str, context: &Context) -> bool {
    let policy = identity(&doc(&format!(
        r#"{{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": {condition}}}"#
    )));
    evaluate(
        &policy,
        principal,
        "s3:GetObject",
        "arn:aws:s3:::b/k",
        context,
    ) == Effect::Allow
}

fn holds(condition: &str, context: &Context) -> bool {
    holds_for(&alice(), condition, context)
}

fn with(key: &str, values: &[&str]) -> Context {
    let mut c = Context::new();
    for v in values {
        c.add(key, *v);
    }
    c
}

fn none() -> Context {
    Context::new()
}

#[test]
fn string_equals_is_exact_and_ors_its_values() {
    let c = r#"{"StringEquals": {"s3:prefix": ["home/", "projects"]}}"#;
    assert!(holds(c, &with("s3:prefix", &["projects"])));
    assert!(holds(c, &with("s3:prefix", &["home/"])));
    assert!(
        !holds(c, &with("s3:prefix", &["Projects"])),
        "case-sensitive"
    );
    assert!(!holds(c, &with("s3:prefix", &["projects/x"])));
    assert!(!holds(c, &none()), "absent key: false");
    let star = r#"{"StringEquals": {"s3:prefix": "a*"}}"#;
    assert!(!holds(star, &with("s3:prefix", &["abc"])), "no wildcards");
    assert!(holds(star, &with("s3:prefix", &["a*"])));
}

#[test]
fn string_not_equals_matches_values_outside_the_list() {
    let c = r#"{"StringNotEquals": {"s3:x-amz-server-side-encryption": ["AES256", "aws:kms"]}}"#;
    let key = "s3:x-amz-server-side-encryption";
    assert!(holds(c, &with(key, &["none"])));
    assert!(!holds(c, &with(key, &["AES256"])));
    assert!(!holds(c, &with(key, &["aws:kms"])), "NOR over the values");
    // IAM User Guide, "Condition operators": a negated operator whose key is
    // absent is true.
    assert!(holds(c, &none()));
}

#[test]
fn ignore_case_operators_fold_case() {
    let c = r#"{"StringEqualsIgnoreCase": {"aws:UserAgent": "Boto3"}}"#;
    assert!(holds(c, &with("aws:UserAgent", &["BOTO3"])));
    assert!(!holds(c, &with("aws:UserAgent", &["boto"])));
    let n = r#"{"StringNotEqualsIgnoreCase": {"aws:UserAgent": "Boto3"}}"#;
    assert!(!holds(n, &with("aws:UserAgent", &["bOtO3"])));
    assert!(holds(n, &with("aws:UserAgent", &["curl"])));
}

#[test]
fn string_like_has_wildcards() {
    let c =
        r#"{"StringLike": {"aws:Referer": ["http://www.example.com/*", "http://?.example.com/"]}}"#;
    assert!(holds(
        c,
        &with("aws:Referer", &["http://www.example.com/page"])
    ));
    assert!(holds(c, &with("aws:Referer", &["http://a.example.com/"])));
    assert!(!holds(c, &with("aws:Referer", &["http://ab.example.com/"])));
    assert!(!holds(
        c,
        &with("aws:Referer", &["https://www.example.com/"])
    ));
    let n = r#"{"StringNotLike": {"s3:prefix": "private/*"}}"#;
    assert!(holds(n, &with("s3:prefix", &["public/"])));
    assert!(!holds(n, &with("s3:prefix", &["private/x"])));
    assert!(holds(n, &none()));
}

#[test]
fn numeric_operators_compare_numbers() {
    let key = "s3:max-keys";
    let cases = [
        ("NumericEquals", [false, true, false]),
        ("NumericNotEquals", [true, false, true]),
        ("NumericLessThan", [true, false, false]),
        ("NumericLessThanEquals", [true, true, false]),
        ("NumericGreaterThan", [false, false, true]),
        ("NumericGreaterThanEquals", [false, true, true]),
    ];
    for (op, expected) in cases {
        for (value, expect) in ["9", "10", "10.5"].iter().zip(expected) {
            for policy_value in [r#""10""#, "10"] {
                let c = format!(r#"{{"{op}": {{"{key}": {policy_value}}}}}"#);
                assert_eq!(holds(&c, &with(key, &[value])), expect, "{op} {value}");
            }
        }
        let c = format!(r#"{{"{op}": {{"{key}": "10"}}}}"#);
        assert!(!holds(&c, &with(key, &["ten"])), "{op}: not a number");
    }
}

#[test]
fn date_operators_compare_instants() {
    let key = "aws:CurrentTime";
    let at = |t: &str| with(key, &[t]);
    let cases = [
        ("DateEquals", [false, true, false]),
        ("DateNotEquals", [true, false, true]),
        ("DateLessThan", [true, false, false]),
        ("DateLessThanEquals", [true, true, false]),
        ("DateGreaterThan", [false, false, true]),
        ("DateGreaterThanEquals", [false, true, true]),
    ];
    // The same instant written three ways in the policy.
    for policy_value in [
        r#""2020-06-01T12:00:00Z""#,
        r#""2020-06-01T14:00:00+02:00""#,
        "1591012800",
    ] {
        for (op, expected) in cases {
            let c = format!(r#"{{"{op}": {{"{key}": {policy_value}}}}}"#);
            let times = ["2020-06-01T11:59:59Z", "2020-06-01T12:00:00Z", "1591012801"];
            for (t, expect) in times.iter().zip(expected) {
                assert_eq!(holds(&c, &at(t)), expect, "{op} {policy_value} {t}");
            }
            assert!(!holds(&c, &at("noon")), "{op}: not a date");
        }
    }
    let c = r#"{"DateGreaterThan": {"aws:EpochTime": "2020-06-01T12:00:00Z"}}"#;
    assert!(holds(c, &Context::new().with_request_time(1_591_012_801)));
    assert!(!holds(c, &Context::new().with_request_time(1_591_012_800)));
}

#[test]
fn bool_takes_strings_or_json_booleans() {
    for c in [
        r#"{"Bool": {"aws:SecureTransport": "true"}}"#,
        r#"{"Bool": {"aws:SecureTransport": true}}"#,
        r#"{"Bool": {"aws:SecureTransport": "TRUE"}}"#,
    ] {
        assert!(holds(c, &with("aws:SecureTransport", &["true"])), "{c}");
        assert!(holds(c, &with("aws:SecureTransport", &["True"])), "{c}");
        assert!(!holds(c, &with("aws:SecureTransport", &["false"])), "{c}");
        assert!(!holds(c, &with("aws:SecureTransport", &["yes"])), "{c}");
        assert!(!holds(c, &none()), "{c}");
    }
}

#[test]
fn ip_operators_test_cidr_blocks() {
    let c = r#"{"IpAddress": {"aws:SourceIp": ["192.0.2.0/24", "2001:db8::/32", "198.51.100.7"]}}"#;
    let ip = |a: &str| with("aws:SourceIp", &[a]);
    assert!(holds(c, &ip("192.0.2.200")));
    assert!(holds(c, &ip("2001:db8:1::5")));
    assert!(holds(c, &ip("198.51.100.7")), "a bare address is a /32");
    assert!(holds(c, &ip("::ffff:192.0.2.9")), "IPv4-mapped IPv6");
    assert!(!holds(c, &ip("198.51.100.8")));
    assert!(!holds(c, &ip("192.0.3.1")));
    assert!(!holds(c, &ip("not-an-ip")));
    assert!(!holds(c, &none()));
    let n = r#"{"NotIpAddress": {"aws:SourceIp": "192.0.2.0/24"}}"#;
    assert!(holds(n, &ip("203.0.113.1")));
    assert!(!holds(n, &ip("192.0.2.1")));
    assert!(!holds(n, &ip("garbage")), "neither in nor out of the block");
}

#[test]
fn null_tests_presence() {
    let absent = r#"{"Null": {"s3:x-amz-server-side-encryption": "true"}}"#;
    let present = r#"{"Null": {"s3:x-amz-server-side-encryption": false}}"#;
    let set = with("s3:x-amz-server-side-encryption", &["AES256"]);
    assert!(holds(absent, &none()));
    assert!(!holds(absent, &set));
    assert!(holds(present, &set));
    assert!(!holds(present, &none()));
    // aws:username comes from the principal: a root has none.
    let no_user = r#"{"Null": {"aws:username": "true"}}"#;
    assert!(holds_for(&Principal::root(crate::A), no_user, &none()));
    assert!(!holds(no_user, &none()));
}

#[test]
fn if_exists_is_true_when_the_key_is_absent() {
    let c = r#"{"StringEqualsIfExists": {"s3:x-amz-acl": "private"}}"#;
    assert!(holds(c, &none()));
    assert!(holds(c, &with("s3:x-amz-acl", &["private"])));
    assert!(!holds(c, &with("s3:x-amz-acl", &["public-read"])));
    let n = r#"{"NumericLessThanIfExists": {"s3:max-keys": 100}}"#;
    assert!(holds(n, &none()));
    assert!(!holds(n, &with("s3:max-keys", &["1000"])));
    let ip = r#"{"NotIpAddressIfExists": {"aws:SourceIp": "10.0.0.0/8"}}"#;
    assert!(holds(ip, &none()));
    assert!(!holds(ip, &with("aws:SourceIp", &["10.1.1.1"])));
}

#[test]
fn for_all_values_needs_every_request_value_in_the_set() {
    let c = r#"{"ForAllValues:StringEquals": {"s3:RequestObjectTagKeys": ["Owner", "Project"]}}"#;
    let keys = |k: &[&str]| with("s3:RequestObjectTagKeys", k);
    assert!(holds(c, &keys(&["Owner"])));
    assert!(holds(c, &keys(&["Project", "Owner"])));
    assert!(!holds(c, &keys(&["Owner", "Cost"])));
    assert!(holds(c, &none()), "no values: vacuously true");
    let n = r#"{"ForAllValues:StringNotLike": {"s3:RequestObjectTagKeys": "aws:*"}}"#;
    assert!(holds(n, &keys(&["a", "b"])));
    assert!(!holds(n, &keys(&["a", "aws:x"])));
}

#[test]
fn for_any_value_needs_one_request_value_in_the_set() {
    let c = r#"{"ForAnyValue:StringLike": {"s3:RequestObjectTagKeys": ["Env*"]}}"#;
    let keys = |k: &[&str]| with("s3:RequestObjectTagKeys", k);
    assert!(holds(c, &keys(&["Owner", "Environment"])));
    assert!(!holds(c, &keys(&["Owner"])));
    assert!(!holds(c, &none()), "no values: false");
    let if_exists = r#"{"ForAnyValue:StringLikeIfExists": {"s3:RequestObjectTagKeys": "Env*"}}"#;
    assert!(holds(if_exists, &none()));
    let n = r#"{"ForAnyValue:StringNotEquals": {"s3:RequestObjectTagKeys": "Owner"}}"#;
    assert!(holds(n, &keys(&["Owner", "Cost"])));
    assert!(!holds(n, &keys(&["Owner"])));
}

#[test]
fn a_plain_operator_on_several_values_needs_one_match_and_its_negation_none() {
    let keys = |k: &[&str]| with("s3:RequestObjectTagKeys", k);
    let c = r#"{"StringEquals": {"s3:RequestObjectTagKeys": "Owner"}}"#;
    assert!(holds(c, &keys(&["Cost", "Owner"])));
    let n = r#"{"StringNotEquals": {"s3:RequestObjectTagKeys": "Owner"}}"#;
    assert!(!holds(n, &keys(&["Cost", "Owner"])));
    assert!(holds(n, &keys(&["Cost", "Project"])));
}

#[test]
fn operators_and_keys_are_anded() {
    let c = r#"{
        "StringEquals": {"s3:prefix": "a", "s3:delimiter": "/"},
        "Bool": {"aws:SecureTransport": "true"}}"#;
    let all = Context::new()
        .with("s3:prefix", "a")
        .with("s3:delimiter", "/")
        .with("aws:SecureTransport", "true");
    assert!(holds(c, &all));
    let wrong_delimiter = all.clone().with("s3:delimiter", "-");
    assert!(
        holds(c, &wrong_delimiter),
        "one of the key's values matches"
    );
    let plain = Context::new()
        .with("s3:prefix", "a")
        .with("s3:delimiter", "/")
        .with("aws:SecureTransport", "false");
    assert!(!holds(c, &plain));
    let no_delimiter = Context::new()
        .with("s3:prefix", "a")
        .with("aws:SecureTransport", "true");
    assert!(!holds(c, &no_delimiter));
}

#[test]
fn keys_are_case_insensitive_in_policy_and_context() {
    let c = r#"{"IpAddress": {"AWS:SOURCEIP": "10.0.0.0/8"}}"#;
    assert!(holds(c, &with("aws:sourceip", &["10.2.3.4"])));
    let tag = r#"{"StringEquals": {"s3:ExistingObjectTag/Environment": "production"}}"#;
    assert!(holds(
        tag,
        &with("S3:existingobjecttag/environment", &["production"])
    ));
    assert!(!holds(
        tag,
        &with("s3:ExistingObjectTag/Owner", &["production"])
    ));
}

#[test]
fn policy_variables_fill_condition_values() {
    let c = r#"{"StringLike": {"s3:prefix": ["home/${aws:username}/*", "shared/${*}"]}}"#;
    assert!(holds(c, &with("s3:prefix", &["home/alice/docs"])));
    assert!(!holds(c, &with("s3:prefix", &["home/bob/docs"])));
    assert!(holds(c, &with("s3:prefix", &["shared/*"])));
    assert!(
        !holds(c, &with("s3:prefix", &["shared/x"])),
        "a literal star"
    );
    // A root has no aws:username: that value matches nothing.
    let root = Principal::root(crate::A);
    assert!(!holds_for(&root, c, &with("s3:prefix", &["home//docs"])));
    let n = r#"{"StringNotEquals": {"s3:prefix": "${aws:username}"}}"#;
    assert!(holds_for(&root, n, &with("s3:prefix", &["x"])));
    let account = r#"{"StringEquals": {"s3:prefix": "${aws:PrincipalAccount}"}}"#;
    assert!(holds(account, &with("s3:prefix", &[crate::A])));
}

#[test]
fn version_2008_keeps_variables_as_text() {
    let policy = identity(
        r#"{"Version": "2008-10-17", "Statement": {"Effect": "Allow", "Action": "s3:ListBucket",
            "Resource": "*", "Condition": {"StringEquals": {"s3:prefix": "${aws:username}"}}}}"#,
    );
    let ask = |prefix: &str| {
        evaluate(
            &policy,
            &alice(),
            "s3:ListBucket",
            "arn:aws:s3:::b",
            &with("s3:prefix", &[prefix]),
        )
    };
    assert_eq!(ask("${aws:username}"), Effect::Allow);
    assert_eq!(ask("alice"), Effect::NotApplicable);
}
