//! Statement matching: principals, actions and resources with wildcards, the
//! Not forms, policy variables in resources, and Deny over Allow.

use policy::{builtin, Context, Effect, Principal, BUILTIN_NAMES};

use crate::{alice, bucket, doc, evaluate, identity, A, B};

fn ctx() -> Context {
    Context::new()
}

#[test]
fn action_wildcards_and_case() {
    let p = identity(&doc(
        r#"{"Effect": "Allow", "Action": ["S3:get*", "s3:List?ucket"], "Resource": "*"}"#,
    ));
    let ask = |action: &str| evaluate(&p, &alice(), action, "arn:aws:s3:::b", &ctx());
    assert_eq!(ask("s3:GetObject"), Effect::Allow);
    assert_eq!(ask("s3:GETBUCKETPOLICY"), Effect::Allow);
    assert_eq!(ask("s3:ListBucket"), Effect::Allow);
    assert_eq!(ask("s3:ListBucketVersions"), Effect::NotApplicable);
    assert_eq!(ask("s3:PutObject"), Effect::NotApplicable);
    assert_eq!(ask("kms:GetObject"), Effect::NotApplicable);
}

#[test]
fn resource_wildcards_are_case_sensitive_and_cross_slashes() {
    let p = identity(&doc(
        r#"{"Effect": "Allow", "Action": "s3:*", "Resource": ["arn:aws:s3:::logs/2024/*", "arn:aws:s3:::b?"]}"#,
    ));
    let ask = |resource: &str| evaluate(&p, &alice(), "s3:GetObject", resource, &ctx());
    assert_eq!(ask("arn:aws:s3:::logs/2024/01/02/x"), Effect::Allow);
    assert_eq!(ask("arn:aws:s3:::logs/2025/x"), Effect::NotApplicable);
    assert_eq!(ask("arn:aws:s3:::Logs/2024/x"), Effect::NotApplicable);
    assert_eq!(ask("arn:aws:s3:::b1"), Effect::Allow);
    assert_eq!(ask("arn:aws:s3:::b12"), Effect::NotApplicable);
    assert_eq!(ask("arn:aws:s3:::b1/k"), Effect::NotApplicable);
}

#[test]
fn the_account_level_resource_is_matched_by_star_and_all_of_s3() {
    for (resource, expect) in [
        ("*", Effect::Allow),
        ("arn:aws:s3:::*", Effect::Allow),
        ("arn:aws:s3:::*/*", Effect::NotApplicable),
        ("arn:aws:s3:::b*", Effect::NotApplicable),
    ] {
        let p = identity(&doc(&format!(
            r#"{{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "{resource}"}}"#
        )));
        let got = evaluate(&p, &alice(), "s3:ListAllMyBuckets", "*", &ctx());
        assert_eq!(got, expect, "{resource}");
    }
}

#[test]
fn not_action_applies_to_every_other_action() {
    let p = identity(&doc(
        r#"{"Effect": "Allow", "NotAction": ["s3:Delete*", "admin:*"], "Resource": "*"}"#,
    ));
    let ask = |action: &str| evaluate(&p, &alice(), action, "arn:aws:s3:::b/k", &ctx());
    assert_eq!(ask("s3:GetObject"), Effect::Allow);
    assert_eq!(ask("kms:Decrypt"), Effect::Allow);
    assert_eq!(ask("s3:DeleteObject"), Effect::NotApplicable);
    assert_eq!(ask("admin:CreateUser"), Effect::NotApplicable);
}

#[test]
fn not_resource_applies_to_every_other_resource() {
    let p = identity(&doc(
        r#"{"Effect": "Deny", "Action": "s3:*", "NotResource": ["arn:aws:s3:::mine", "arn:aws:s3:::mine/*"]}"#,
    ));
    let ask = |resource: &str| evaluate(&p, &alice(), "s3:GetObject", resource, &ctx());
    assert_eq!(ask("arn:aws:s3:::mine/k"), Effect::NotApplicable);
    assert_eq!(ask("arn:aws:s3:::other/k"), Effect::ExplicitDeny);
    assert_eq!(ask("*"), Effect::ExplicitDeny);
}

#[test]
fn principals_match_everyone_accounts_and_users() {
    let anyone = Principal::Anonymous;
    let root_a = Principal::root(A);
    let bob_a = Principal::user(A, "bob");
    let carol_b = Principal::user(B, "carol");
    let everyone = [true, true, true, true, true];
    let account_a = [false, true, true, true, false];
    let alice_only = [false, false, true, false, false];
    let cases: [(&str, [bool; 5]); 7] = [
        (r#""*""#, everyone),
        (r#"{"AWS": "*"}"#, everyone),
        (&format!(r#"{{"AWS": "{A}"}}"#), account_a),
        (
            &format!(r#"{{"AWS": ["arn:aws:iam::{A}:root"]}}"#),
            account_a,
        ),
        (&format!(r#"{{"CanonicalUser": "{A}"}}"#), account_a),
        (
            &format!(r#"{{"AWS": "arn:aws:iam::{A}:user/alice"}}"#),
            alice_only,
        ),
        (
            &format!(r#"{{"AWS": ["arn:aws:iam::{B}:root", "arn:aws:iam::{A}:user/alice"]}}"#),
            [false, false, true, false, true],
        ),
    ];
    let who = [&anyone, &root_a, &alice(), &bob_a, &carol_b];
    for (principal, expected) in cases {
        let p = bucket(&doc(&format!(
            r#"{{"Effect": "Allow", "Principal": {principal}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}}"#
        )));
        for (caller, expect) in who.iter().zip(expected) {
            let got = evaluate(&p, caller, "s3:GetObject", "arn:aws:s3:::b/k", &ctx());
            let want = if expect {
                Effect::Allow
            } else {
                Effect::NotApplicable
            };
            assert_eq!(got, want, "{principal} for {caller:?}");
        }
    }
}

#[test]
fn not_principal_applies_to_everyone_else_anonymous_included() {
    let p = bucket(&doc(&format!(
        r#"{{"Effect": "Deny", "NotPrincipal": {{"AWS": ["arn:aws:iam::{A}:user/alice", "{B}"]}},
            "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}}"#
    )));
    let ask = |who: &Principal| evaluate(&p, who, "s3:GetObject", "arn:aws:s3:::b/k", &ctx());
    assert_eq!(ask(&alice()), Effect::NotApplicable);
    assert_eq!(ask(&Principal::user(B, "carol")), Effect::NotApplicable);
    assert_eq!(ask(&Principal::user(A, "bob")), Effect::ExplicitDeny);
    assert_eq!(ask(&Principal::root(A)), Effect::ExplicitDeny);
    assert_eq!(ask(&Principal::Anonymous), Effect::ExplicitDeny);
}

#[test]
fn deny_wins_within_a_policy_whatever_the_order() {
    let allow = r#"{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}"#;
    let deny = r#"{"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::b/*"}"#;
    for statements in [format!("{allow}, {deny}"), format!("{deny}, {allow}")] {
        let p = identity(&doc(&statements));
        let ask = |a: &str| evaluate(&p, &alice(), a, "arn:aws:s3:::b/k", &ctx());
        assert_eq!(ask("s3:DeleteObject"), Effect::ExplicitDeny);
        assert_eq!(ask("s3:GetObject"), Effect::Allow);
    }
}

#[test]
fn policy_variables_in_resources() {
    let p = identity(&doc(r#"{"Effect": "Allow", "Action": "s3:*", "Resource": [
            "arn:aws:s3:::home/${aws:username}/*",
            "arn:aws:s3:::acct-${aws:PrincipalAccount}/*",
            "arn:aws:s3:::lit/${*}${?}${$}"]}"#));
    let ask = |who: &Principal, r: &str| evaluate(&p, who, "s3:PutObject", r, &ctx());
    assert_eq!(ask(&alice(), "arn:aws:s3:::home/alice/x"), Effect::Allow);
    assert_eq!(
        ask(&alice(), "arn:aws:s3:::home/bob/x"),
        Effect::NotApplicable
    );
    assert_eq!(
        ask(&alice(), &format!("arn:aws:s3:::acct-{A}/x")),
        Effect::Allow
    );
    assert_eq!(
        ask(&alice(), &format!("arn:aws:s3:::acct-{B}/x")),
        Effect::NotApplicable
    );
    assert_eq!(ask(&alice(), "arn:aws:s3:::lit/*?$"), Effect::Allow);
    assert_eq!(ask(&alice(), "arn:aws:s3:::lit/ab$"), Effect::NotApplicable);
    // A name holding a wildcard character is still literal.
    let star = Principal::user(A, "*");
    assert_eq!(ask(&star, "arn:aws:s3:::home/*/x"), Effect::Allow);
    assert_eq!(ask(&star, "arn:aws:s3:::home/bob/x"), Effect::NotApplicable);
    // A root has no user name: that pattern matches nothing.
    let root = Principal::root(A);
    assert_eq!(ask(&root, "arn:aws:s3:::home//x"), Effect::NotApplicable);
    assert_eq!(
        ask(&root, "arn:aws:s3:::home/${aws:username}/x"),
        Effect::NotApplicable
    );
}

#[test]
fn not_resource_with_an_unresolvable_variable_applies() {
    let p = identity(&doc(
        r#"{"Effect": "Deny", "Action": "s3:*", "NotResource": "arn:aws:s3:::home/${aws:username}/*"}"#,
    ));
    let root = Principal::root(A);
    let got = evaluate(&p, &root, "s3:GetObject", "arn:aws:s3:::home/x/y", &ctx());
    assert_eq!(got, Effect::ExplicitDeny);
    let got = evaluate(
        &p,
        &alice(),
        "s3:GetObject",
        "arn:aws:s3:::home/alice/y",
        &ctx(),
    );
    assert_eq!(got, Effect::NotApplicable);
}

#[test]
fn version_2008_resources_keep_variables_as_text() {
    let p = identity(
        r#"{"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::home/${aws:username}/*"}]}"#,
    );
    let ask = |r: &str| evaluate(&p, &alice(), "s3:GetObject", r, &ctx());
    assert_eq!(ask("arn:aws:s3:::home/alice/x"), Effect::NotApplicable);
    assert_eq!(ask("arn:aws:s3:::home/${aws:username}/x"), Effect::Allow);
}

#[test]
fn builtin_policies_grant_what_minio_grants() {
    assert_eq!(
        BUILTIN_NAMES,
        ["readonly", "readwrite", "writeonly", "consoleAdmin"]
    );
    let ask = |name: &str, action: &str, resource: &str| {
        let p = builtin(name).unwrap();
        evaluate(&p, &alice(), action, resource, &ctx())
    };
    let obj = "arn:aws:s3:::b/k";
    assert_eq!(ask("readonly", "s3:GetObject", obj), Effect::Allow);
    assert_eq!(
        ask("readonly", "s3:GetBucketLocation", "arn:aws:s3:::b"),
        Effect::Allow
    );
    assert_eq!(ask("readonly", "s3:PutObject", obj), Effect::NotApplicable);
    assert_eq!(ask("readwrite", "s3:DeleteObject", obj), Effect::Allow);
    assert_eq!(ask("readwrite", "s3:ListAllMyBuckets", "*"), Effect::Allow);
    assert_eq!(
        ask("readwrite", "admin:CreateUser", "*"),
        Effect::NotApplicable
    );
    assert_eq!(ask("writeonly", "s3:PutObject", obj), Effect::Allow);
    assert_eq!(ask("writeonly", "s3:GetObject", obj), Effect::NotApplicable);
    assert_eq!(
        ask("consoleAdmin", "admin:CreateAccount", "*"),
        Effect::Allow
    );
    assert_eq!(ask("consoleAdmin", "kms:Decrypt", "*"), Effect::Allow);
    assert_eq!(ask("consoleAdmin", "s3:GetObject", obj), Effect::Allow);
}
