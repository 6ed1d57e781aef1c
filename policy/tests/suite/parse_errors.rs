//! What the parser accepts, and for what it refuses, a message naming the
//! problem.

use policy::{Policy, PolicyError, PolicyKind, MAX_POLICY_BYTES};

use crate::{doc, A};

fn error(json: &str, kind: PolicyKind) -> String {
    match Policy::parse(json, kind) {
        Ok(_) => panic!("accepted: {json}"),
        Err(e) => e.to_string(),
    }
}

/// A statement that is valid in an identity policy, with `extra` fields.
fn statement(extra: &str) -> String {
    doc(&format!(
        r#"{{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"{extra}}}"#
    ))
}

fn assert_refused(cases: &[(String, PolicyKind, &[&str])]) {
    for (json, kind, needles) in cases {
        let message = error(json, *kind);
        for needle in *needles {
            assert!(
                message.contains(needle),
                "{json}\n  gave \"{message}\", which does not mention \"{needle}\""
            );
        }
    }
}

use PolicyKind::{Identity, Resource};

#[test]
fn document_shape() {
    assert_refused(&[
        ("not json".into(), Identity, &["not valid JSON"]),
        ("[]".into(), Identity, &["JSON object"]),
        (
            r#"{"Version": "2012-10-17"}"#.into(),
            Identity,
            &["no Statement"],
        ),
        (doc(""), Identity, &["no Statement"]),
        (
            r#"{"Version": "2012-10-17", "Statement": [], "Extra": 1}"#.into(),
            Identity,
            &["unknown field", "Extra"],
        ),
        (
            r#"{"version": "2012-10-17", "Statement": []}"#.into(),
            Identity,
            &["unknown field", "version"],
        ),
        (
            r#"{"Version": "2012-10-18", "Statement": []}"#.into(),
            Identity,
            &["invalid Version", "2012-10-18"],
        ),
        (
            r#"{"Version": 2012, "Statement": []}"#.into(),
            Identity,
            &["invalid Version"],
        ),
        (
            r#"{"Id": 7, "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}"#.into(),
            Identity,
            &["Id must be a string"],
        ),
        (doc("1"), Identity, &["Statement must be a JSON object"]),
    ]);
}

#[test]
fn the_document_size_is_bounded() {
    let padding = " ".repeat(MAX_POLICY_BYTES);
    let json = format!("{}{padding}", statement(""));
    match Policy::parse(&json, Identity) {
        Err(PolicyError::TooLarge {
            size_bytes,
            limit_bytes,
        }) => {
            assert_eq!(size_bytes, json.len());
            assert_eq!(limit_bytes, 20 * 1024);
        }
        other => panic!("{other:?}"),
    }
    let fits = format!(
        "{}{}",
        statement(""),
        " ".repeat(MAX_POLICY_BYTES - statement("").len())
    );
    assert!(Policy::parse(&fits, Identity).is_ok());
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("{}{}", "[".repeat(4_000), "]".repeat(4_000));
    let json = statement(&format!(
        r#", "Condition": {{"StringEquals": {{"s3:prefix": {deep}}}}}"#
    ));
    assert!(json.len() <= MAX_POLICY_BYTES);
    assert!(error(&json, Identity).contains("not valid JSON"));
    let shallow = statement(r#", "Condition": {"StringEquals": {"s3:prefix": [[[["a"]]]]}}"#);
    assert!(error(&shallow, Identity).contains("s3:prefix"));
}

#[test]
fn statement_fields() {
    let no_effect = doc(r#"{"Action": "*", "Resource": "*"}"#);
    let lower_effect = doc(r#"{"Effect": "allow", "Action": "*", "Resource": "*"}"#);
    let field_case = doc(r#"{"Effect": "Allow", "action": "*", "Resource": "*"}"#);
    let no_action = doc(r#"{"Effect": "Allow", "Resource": "*"}"#);
    let no_resource = doc(r#"{"Effect": "Allow", "Action": "*"}"#);
    let dup_sid = doc(
        r#"{"Sid": "S", "Effect": "Allow", "Action": "*", "Resource": "*"},
           {"Sid": "S", "Effect": "Deny", "Action": "*", "Resource": "*"}"#,
    );
    assert_refused(&[
        (no_effect, Identity, &["no Effect"]),
        (lower_effect, Identity, &["invalid Effect", "allow"]),
        (field_case, Identity, &["unknown field", "action"]),
        (no_action, Identity, &["no Action"]),
        (no_resource, Identity, &["no Resource"]),
        (
            statement(r#", "NotAction": "s3:PutObject""#),
            Identity,
            &["Action or NotAction, not both"],
        ),
        (
            statement(r#", "NotResource": "*""#),
            Identity,
            &["Resource or NotResource, not both"],
        ),
        (
            statement(r#", "Sid": 1"#),
            Identity,
            &["Sid must be a string"],
        ),
        (
            statement(r#", "Condition": []"#),
            Identity,
            &["Condition must be a JSON object"],
        ),
        (dup_sid, Identity, &["unique", "S"]),
    ]);
}

#[test]
fn actions() {
    let with_action = |action: &str| {
        doc(&format!(
            r#"{{"Effect": "Allow", "Action": {action}, "Resource": "*"}}"#
        ))
    };
    assert_refused(&[
        (
            with_action(r#""s3:GetObjects""#),
            Identity,
            &["invalid action", "s3:GetObjects"],
        ),
        (
            with_action(r#"["s3:GetObject", "iam:PassRole"]"#),
            Identity,
            &["invalid action", "iam:PassRole"],
        ),
        (with_action(r#""GetObject""#), Identity, &["invalid action"]),
        (
            with_action("[]"),
            Identity,
            &["Action must be a string or a non-empty array"],
        ),
        (with_action("[7]"), Identity, &["Action must be a string"]),
        (with_action("{}"), Identity, &["Action must be a string"]),
    ]);
    for ok in [
        r#""*""#,
        r#""s3:*""#,
        r#"["S3:GETOBJECT", "admin:Create*", "kms:Decrypt"]"#,
    ] {
        assert!(Policy::parse(&with_action(ok), Identity).is_ok(), "{ok}");
    }
}

#[test]
fn resources() {
    let with_resource = |r: &str| {
        doc(&format!(
            r#"{{"Effect": "Allow", "Action": "*", "Resource": {r}}}"#
        ))
    };
    assert_refused(&[
        (
            with_resource(r#""arn:aws:iam::111122223333:user/x""#),
            Identity,
            &["invalid resource", "arn:aws:iam"],
        ),
        (
            with_resource(r#""arn:aws:s3:::""#),
            Identity,
            &["invalid resource"],
        ),
        (
            with_resource(r#""bucket/*""#),
            Identity,
            &["invalid resource", "bucket/*"],
        ),
        (
            with_resource(r#""arn:aws:s3:::b/${aws:username""#),
            Identity,
            &["invalid resource", "unterminated"],
        ),
        (
            with_resource(r#""arn:aws:s3:::b/${aws:nothing}""#),
            Identity,
            &["invalid policy variable", "aws:nothing"],
        ),
        (
            with_resource(r#""arn:aws:s3:::b/${}""#),
            Identity,
            &["invalid policy variable"],
        ),
    ]);
    let p = Policy::parse(
        &with_resource(r#"["arn:aws:s3:::b", "arn:aws:s3:::b/${aws:username}/*", "*"]"#),
        Identity,
    )
    .unwrap();
    let listed: Vec<&str> = p.resources().collect();
    assert_eq!(
        listed,
        ["arn:aws:s3:::b", "arn:aws:s3:::b/${aws:username}/*", "*"]
    );
    // In a 2008 policy `${` is only text, so nothing about it is checked.
    let old =
        r#"{"Statement": {"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::b/${nope"}}"#;
    assert!(Policy::parse(old, Identity).is_ok());
}

#[test]
fn principals() {
    let with_principal = |p: &str| {
        doc(&format!(
            r#"{{"Effect": "Allow", "Principal": {p}, "Action": "*", "Resource": "*"}}"#
        ))
    };
    assert_refused(&[
        (
            with_principal(r#""*""#),
            Identity,
            &["invalid principal", "identity policy"],
        ),
        (
            statement(""),
            Resource,
            &["invalid principal", "Principal or NotPrincipal"],
        ),
        (
            doc(
                r#"{"Effect": "Allow", "Principal": "*", "NotPrincipal": "*", "Action": "*", "Resource": "*"}"#,
            ),
            Resource,
            &["Principal or NotPrincipal, not both"],
        ),
        (
            with_principal(r#""111122223333""#),
            Resource,
            &["invalid principal"],
        ),
        (
            with_principal(r#"{"AWS": "11112222333"}"#),
            Resource,
            &["invalid principal", "11112222333"],
        ),
        (
            with_principal(r#"{"AWS": "arn:aws:iam::111122223333:role/r"}"#),
            Resource,
            &["invalid principal", "role/r"],
        ),
        (
            with_principal(r#"{"AWS": "arn:aws:iam::111122223333:user/*"}"#),
            Resource,
            &["invalid principal", "user/*"],
        ),
        (
            with_principal(r#"{"Service": "s3.amazonaws.com"}"#),
            Resource,
            &["invalid principal", "Service"],
        ),
        (
            with_principal(r#"{"CanonicalUser": "abc"}"#),
            Resource,
            &["invalid principal", "abc"],
        ),
        (with_principal("{}"), Resource, &["invalid principal"]),
        (
            with_principal(r#"{"AWS": []}"#),
            Resource,
            &["Principal must be a string or a non-empty array"],
        ),
    ]);
    for ok in [
        r#""*""#.to_string(),
        r#"{"AWS": "*"}"#.to_string(),
        format!(r#"{{"AWS": ["{A}", "arn:aws:iam::{A}:root", "arn:aws:iam::{A}:user/a/b"]}}"#),
        format!(r#"{{"CanonicalUser": "{A}"}}"#),
    ] {
        assert!(
            Policy::parse(&with_principal(&ok), Resource).is_ok(),
            "{ok}"
        );
    }
}

#[test]
fn conditions() {
    let with_condition = |c: &str| statement(&format!(r#", "Condition": {c}"#));
    assert_refused(&[
        (
            with_condition(r#"{"StringEqualz": {"s3:prefix": "a"}}"#),
            Identity,
            &["invalid condition operator", "StringEqualz"],
        ),
        (
            with_condition(r#"{"stringequals": {"s3:prefix": "a"}}"#),
            Identity,
            &["invalid condition operator"],
        ),
        (
            with_condition(r#"{"NullIfExists": {"s3:prefix": "true"}}"#),
            Identity,
            &["invalid condition operator", "NullIfExists"],
        ),
        (
            with_condition(r#"{"ForAnyValue:Null": {"s3:prefix": "true"}}"#),
            Identity,
            &["invalid condition operator"],
        ),
        (
            with_condition(r#"{"ForSomeValues:StringEquals": {"s3:prefix": "a"}}"#),
            Identity,
            &["invalid condition operator"],
        ),
        (
            with_condition(r#"{"StringEquals": {"aws:RequestedRegion": "x"}}"#),
            Identity,
            &["invalid condition key", "aws:RequestedRegion"],
        ),
        (
            with_condition(r#"{"StringEquals": {"s3:RequestObjectTag/": "x"}}"#),
            Identity,
            &["invalid condition key"],
        ),
        (
            with_condition(r#"{"StringEquals": "s3:prefix"}"#),
            Identity,
            &["StringEquals must map keys to values"],
        ),
        (
            with_condition(r#"{"StringEquals": {"s3:prefix": []}}"#),
            Identity,
            &["s3:prefix", "non-empty array"],
        ),
        (
            with_condition(r#"{"StringEquals": {"s3:prefix": [["a"]]}}"#),
            Identity,
            &["s3:prefix"],
        ),
        (
            with_condition(r#"{"StringEquals": {"s3:prefix": null}}"#),
            Identity,
            &["s3:prefix"],
        ),
        (
            with_condition(r#"{"IpAddress": {"aws:SourceIp": "10.0.0.0/33"}}"#),
            Identity,
            &["invalid value", "10.0.0.0/33"],
        ),
        (
            with_condition(r#"{"IpAddress": {"aws:SourceIp": 10}}"#),
            Identity,
            &["invalid value"],
        ),
        (
            with_condition(r#"{"NumericLessThan": {"s3:max-keys": "ten"}}"#),
            Identity,
            &["invalid value", "ten"],
        ),
        (
            with_condition(r#"{"NumericLessThan": {"s3:max-keys": "NaN"}}"#),
            Identity,
            &["invalid value", "NaN"],
        ),
        (
            with_condition(r#"{"DateLessThan": {"aws:CurrentTime": "tomorrow"}}"#),
            Identity,
            &["invalid value", "tomorrow"],
        ),
        (
            with_condition(r#"{"DateLessThan": {"aws:CurrentTime": 1.5}}"#),
            Identity,
            &["invalid value", "1.5"],
        ),
        (
            with_condition(r#"{"Bool": {"aws:SecureTransport": "yes"}}"#),
            Identity,
            &["invalid value", "yes"],
        ),
        (
            with_condition(r#"{"Null": {"s3:prefix": 1}}"#),
            Identity,
            &["invalid value"],
        ),
        (
            with_condition(r#"{"StringLike": {"s3:prefix": "${aws:SourceArn}"}}"#),
            Identity,
            &["invalid policy variable", "aws:SourceArn"],
        ),
    ]);
}
