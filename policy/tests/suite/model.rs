//! The evaluator against a reference model written separately and as
//! plainly as possible: random policies over a small vocabulary, rendered to
//! JSON and parsed by the crate, random requests, and the model's verdict
//! (from the same rules, transcribed directly) must equal the crate's, for
//! each policy alone and for `authorize` as a whole.

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use policy::{
    authorize, Authorization, Context, Effect, Policy, PolicyKind, Principal, Request, Verdict,
};

use crate::{A, B};

const ACTIONS: [&str; 7] = [
    "s3:GetObject",
    "s3:PutObject",
    "s3:ListBucket",
    "s3:GetBucketPolicy",
    "s3:PutBucketPolicy",
    "s3:ListAllMyBuckets",
    "admin:CreateUser",
];
const ACTION_PATTERNS: [&str; 9] = [
    "*",
    "s3:*",
    "s3:Get*",
    "s3:GetObject",
    "S3:PUTOBJECT",
    "s3:List?ucket",
    "s3:*Policy",
    "admin:*",
    "s3:ListAllMyBuckets",
];
const RESOURCES: [&str; 5] = [
    "arn:aws:s3:::b1",
    "arn:aws:s3:::b1/alice/k",
    "arn:aws:s3:::b1/x",
    "arn:aws:s3:::b2/k",
    "*",
];
const RESOURCE_PATTERNS: [&str; 7] = [
    "*",
    "arn:aws:s3:::*",
    "arn:aws:s3:::b1",
    "arn:aws:s3:::b1/*",
    "arn:aws:s3:::b?/k",
    "arn:aws:s3:::*/k",
    "arn:aws:s3:::b1/${aws:username}/*",
];

fn principal_entry(i: usize) -> String {
    match i {
        0 => "*".into(),
        1 => A.into(),
        2 => format!("arn:aws:iam::{A}:root"),
        3 => B.into(),
        4 => format!("arn:aws:iam::{A}:user/alice"),
        _ => format!("arn:aws:iam::{B}:user/carol"),
    }
}
const PRINCIPAL_ENTRIES: usize = 6;

fn caller(i: usize) -> Principal {
    match i {
        0 => Principal::Anonymous,
        1 => Principal::root(A),
        2 => Principal::root(B),
        3 => Principal::user(A, "alice"),
        4 => Principal::user(A, "bob"),
        _ => Principal::user(B, "carol"),
    }
}
const CALLERS: usize = 6;

/// (operator, key, values): at most one per (operator, key) in a statement.
const CONDITIONS: [(&str, &str, &[&str]); 17] = [
    ("StringEquals", "s3:prefix", &["a", "b"]),
    ("StringNotEquals", "s3:prefix", &["a"]),
    ("StringLike", "s3:prefix", &["a*"]),
    ("StringNotLike", "s3:prefix", &["a*"]),
    ("StringEqualsIfExists", "s3:prefix", &["b"]),
    ("StringEquals", "s3:delimiter", &["${aws:username}"]),
    ("Null", "s3:prefix", &["true"]),
    ("Null", "aws:SecureTransport", &["false"]),
    ("Bool", "aws:SecureTransport", &["true"]),
    ("IpAddress", "aws:SourceIp", &["10.0.0.0/8"]),
    ("NotIpAddress", "aws:SourceIp", &["10.0.0.0/8"]),
    ("NumericLessThan", "s3:max-keys", &["10"]),
    ("NumericGreaterThanEquals", "s3:max-keys", &["10"]),
    (
        "ForAllValues:StringEquals",
        "s3:RequestObjectTagKeys",
        &["x", "y"],
    ),
    (
        "ForAnyValue:StringEquals",
        "s3:RequestObjectTagKeys",
        &["x"],
    ),
    (
        "ForAnyValue:StringNotEquals",
        "s3:RequestObjectTagKeys",
        &["x"],
    ),
    ("StringEquals", "aws:PrincipalType", &["User"]),
];

#[derive(Debug, Clone)]
struct Stmt {
    allow: bool,
    principals: Option<(bool, Vec<usize>)>,
    actions: (bool, Vec<usize>),
    resources: (bool, Vec<usize>),
    conditions: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Doc {
    version_2012: bool,
    statements: Vec<Stmt>,
}

/// The request's condition values, as the model sees them: key -> values.
#[derive(Debug, Clone)]
struct Values {
    prefix: Option<&'static str>,
    delimiter: Option<&'static str>,
    secure: Option<&'static str>,
    ip: Option<&'static str>,
    max_keys: Option<&'static str>,
    tag_keys: Vec<&'static str>,
}

#[derive(Debug, Clone)]
struct Asked {
    caller: usize,
    action: usize,
    resource: usize,
    values: Values,
}

// ---- rendering to JSON (what the crate sees) ----

fn list(negated: bool, plain: &str, not: &str, items: Vec<Value>) -> (String, Value) {
    (
        if negated { not } else { plain }.to_string(),
        Value::Array(items),
    )
}

fn render(doc: &Doc, kind: PolicyKind) -> String {
    let statements: Vec<Value> = doc
        .statements
        .iter()
        .map(|s| {
            let mut m = Map::new();
            m.insert(
                "Effect".into(),
                json!(if s.allow { "Allow" } else { "Deny" }),
            );
            if let (PolicyKind::Resource, Some((negated, entries))) = (kind, &s.principals) {
                let value = if entries == &[0] {
                    json!("*")
                } else {
                    json!({"AWS": entries.iter().map(|&i| principal_entry(i)).collect::<Vec<_>>()})
                };
                m.insert(
                    if *negated {
                        "NotPrincipal"
                    } else {
                        "Principal"
                    }
                    .into(),
                    value,
                );
            }
            let (k, v) = list(
                s.actions.0,
                "Action",
                "NotAction",
                s.actions
                    .1
                    .iter()
                    .map(|&i| json!(ACTION_PATTERNS[i]))
                    .collect(),
            );
            m.insert(k, v);
            let (k, v) = list(
                s.resources.0,
                "Resource",
                "NotResource",
                s.resources
                    .1
                    .iter()
                    .map(|&i| json!(RESOURCE_PATTERNS[i]))
                    .collect(),
            );
            m.insert(k, v);
            let mut block = Map::new();
            for &c in &s.conditions {
                let (op, key, values) = CONDITIONS[c];
                let entry = block.entry(op).or_insert_with(|| json!({}));
                if let Value::Object(keys) = entry {
                    keys.insert(key.into(), json!(values));
                }
            }
            if !block.is_empty() {
                m.insert("Condition".into(), Value::Object(block));
            }
            Value::Object(m)
        })
        .collect();
    let mut top = Map::new();
    if doc.version_2012 {
        top.insert("Version".into(), json!("2012-10-17"));
    }
    top.insert("Statement".into(), Value::Array(statements));
    Value::Object(top).to_string()
}

fn context(v: &Values) -> Context {
    let mut c = Context::new();
    let singles = [
        ("s3:prefix", v.prefix),
        ("s3:delimiter", v.delimiter),
        ("aws:SecureTransport", v.secure),
        ("aws:SourceIp", v.ip),
        ("s3:max-keys", v.max_keys),
    ];
    for (key, value) in singles {
        if let Some(value) = value {
            c.add(key, value);
        }
    }
    for k in &v.tag_keys {
        c.add("s3:RequestObjectTagKeys", *k);
    }
    c
}

// ---- the model ----

fn glob(p: &[char], t: &[char]) -> bool {
    match p.first() {
        None => t.is_empty(),
        Some('*') => glob(&p[1..], t) || (!t.is_empty() && glob(p, &t[1..])),
        Some('?') => !t.is_empty() && glob(&p[1..], &t[1..]),
        Some(c) => t.first() == Some(c) && glob(&p[1..], &t[1..]),
    }
}

fn like(pattern: &str, text: &str) -> bool {
    glob(
        &pattern.chars().collect::<Vec<_>>(),
        &text.chars().collect::<Vec<_>>(),
    )
}

fn user_name(who: &Principal) -> Option<&str> {
    match who {
        Principal::Authenticated { user: Some(u), .. } => Some(u),
        _ => None,
    }
}

/// Replaces `${aws:username}` (2012 policies only); None if it has no value.
fn substitute(text: &str, who: &Principal, version_2012: bool) -> Option<String> {
    if !version_2012 || !text.contains("${aws:username}") {
        return Some(text.to_string());
    }
    user_name(who).map(|u| text.replace("${aws:username}", u))
}

fn request_values(key: &str, who: &Principal, v: &Values) -> Vec<String> {
    let one = |x: Option<&str>| x.map(|s| vec![s.to_string()]).unwrap_or_default();
    match key {
        "s3:prefix" => one(v.prefix),
        "s3:delimiter" => one(v.delimiter),
        "aws:SecureTransport" => one(v.secure),
        "aws:SourceIp" => one(v.ip),
        "s3:max-keys" => one(v.max_keys),
        "s3:RequestObjectTagKeys" => v.tag_keys.iter().map(|s| s.to_string()).collect(),
        "aws:PrincipalType" => vec![match who {
            Principal::Anonymous => "Anonymous".to_string(),
            Principal::Authenticated { user: None, .. } => "Account".to_string(),
            Principal::Authenticated { .. } => "User".to_string(),
        }],
        _ => unreachable!("{key}"),
    }
}

fn in_ten_slash_eight(ip: &str) -> Option<bool> {
    let ip: std::net::Ipv4Addr = ip.parse().ok()?;
    Some(ip.octets()[0] == 10)
}

fn condition_holds(c: usize, who: &Principal, v: &Values, version_2012: bool) -> bool {
    let (op, key, policy_values) = CONDITIONS[c];
    let got = request_values(key, who, v);
    let wanted: Vec<String> = policy_values
        .iter()
        .filter_map(|p| substitute(p, who, version_2012))
        .collect();
    let equal = |x: &String| wanted.contains(x);
    let number = |x: &String| x.parse::<f64>().ok();
    match op {
        "StringEquals" => got.iter().any(equal),
        "StringNotEquals" => !got.iter().any(equal),
        "StringLike" => got.iter().any(|x| wanted.iter().any(|p| like(p, x))),
        "StringNotLike" => !got.iter().any(|x| wanted.iter().any(|p| like(p, x))),
        "StringEqualsIfExists" => got.is_empty() || got.iter().any(equal),
        "Null" => (policy_values[0] == "true") == got.is_empty(),
        "Bool" => got.iter().any(|x| x.eq_ignore_ascii_case(policy_values[0])),
        "IpAddress" => got.iter().any(|x| in_ten_slash_eight(x) == Some(true)),
        "NotIpAddress" => got.iter().all(|x| in_ten_slash_eight(x) == Some(false)),
        "NumericLessThan" => got.iter().any(|x| number(x).is_some_and(|n| n < 10.0)),
        "NumericGreaterThanEquals" => got.iter().any(|x| number(x).is_some_and(|n| n >= 10.0)),
        "ForAllValues:StringEquals" => got.iter().all(equal),
        "ForAnyValue:StringEquals" => got.iter().any(equal),
        "ForAnyValue:StringNotEquals" => got.iter().any(|x| !equal(x)),
        _ => unreachable!("{op}"),
    }
}

fn principal_matches(entry: usize, who: &Principal) -> bool {
    match (entry, who) {
        (0, _) => true,
        (_, Principal::Anonymous) => false,
        (1 | 2, p) => p.account() == Some(A),
        (3, p) => p.account() == Some(B),
        (4, p) => p.account() == Some(A) && user_name(p) == Some("alice"),
        (_, p) => p.account() == Some(B) && user_name(p) == Some("carol"),
    }
}

fn statement_applies(s: &Stmt, kind: PolicyKind, asked: &Asked, version_2012: bool) -> bool {
    let who = caller(asked.caller);
    let action = ACTIONS[asked.action].to_lowercase();
    let resource = RESOURCES[asked.resource];
    let principal_ok = match (kind, &s.principals) {
        (PolicyKind::Resource, Some((negated, entries))) => {
            entries.iter().any(|&e| principal_matches(e, &who)) != *negated
        }
        _ => true,
    };
    let action_ok = s
        .actions
        .1
        .iter()
        .any(|&i| like(&ACTION_PATTERNS[i].to_lowercase(), &action))
        != s.actions.0;
    let resource_ok = s.resources.1.iter().any(|&i| {
        let Some(pattern) = substitute(RESOURCE_PATTERNS[i], &who, version_2012) else {
            return false;
        };
        if resource == "*" {
            pattern == "*" || pattern == "arn:aws:s3:::*"
        } else {
            like(&pattern, resource)
        }
    }) != s.resources.0;
    let conditions_ok = s
        .conditions
        .iter()
        .all(|&c| condition_holds(c, &who, &asked.values, version_2012));
    principal_ok && action_ok && resource_ok && conditions_ok
}

fn model_effect(doc: &Doc, kind: PolicyKind, asked: &Asked) -> Effect {
    let applying: Vec<&Stmt> = doc
        .statements
        .iter()
        .filter(|s| statement_applies(s, kind, asked, doc.version_2012))
        .collect();
    if applying.iter().any(|s| !s.allow) {
        Effect::ExplicitDeny
    } else if applying.iter().any(|s| s.allow) {
        Effect::Allow
    } else {
        Effect::NotApplicable
    }
}

fn model_verdict(setup: &Setup, asked: &Asked) -> Verdict {
    let who = caller(asked.caller);
    let action = ACTIONS[asked.action];
    let identity: Vec<Effect> = if user_name(&who).is_some() {
        setup
            .identity
            .iter()
            .map(|d| model_effect(d, PolicyKind::Identity, asked))
            .collect()
    } else {
        Vec::new()
    };
    let owner = setup.owner;
    // No owner, no bucket: its policy and ACL do not count.
    let bucket = match owner {
        Some(_) => setup
            .bucket
            .as_ref()
            .map(|d| model_effect(d, PolicyKind::Resource, asked)),
        None => None,
    };
    let acl = owner.is_some() && setup.acl;
    let is_root = matches!(who, Principal::Authenticated { user: None, .. });
    let own = who.account().is_some() && (owner.is_none() || owner == who.account());

    // Rule 1, and its exception for the owner's root.
    let policy_action = [
        "s3:GetBucketPolicy",
        "s3:PutBucketPolicy",
        "s3:DeleteBucketPolicy",
    ]
    .contains(&action);
    if is_root && owner.is_some() && owner == who.account() && policy_action {
        return Verdict::Allowed;
    }
    if identity.contains(&Effect::ExplicitDeny) || bucket == Some(Effect::ExplicitDeny) {
        return Verdict::ExplicitDeny;
    }
    let identity_allows = identity.contains(&Effect::Allow);
    let bucket_allows = bucket == Some(Effect::Allow) || acl;
    // Rule 2.
    if is_root && own {
        return Verdict::Allowed;
    }
    // Rule 3.
    if own {
        return if identity_allows || bucket_allows {
            Verdict::Allowed
        } else {
            Verdict::ImplicitDeny
        };
    }
    // Rule 4.
    let caller_side = match who {
        Principal::Anonymous => true,
        _ if is_root => true,
        _ => identity_allows,
    };
    if bucket_allows && caller_side {
        Verdict::Allowed
    } else {
        Verdict::ImplicitDeny
    }
}

// ---- generation ----

#[derive(Debug, Clone)]
struct Setup {
    identity: Vec<Doc>,
    bucket: Option<Doc>,
    owner: Option<&'static str>,
    acl: bool,
}

fn indices(n: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0..n, 1..=3)
}

fn statement() -> impl Strategy<Value = Stmt> {
    (
        any::<bool>(),
        (prop::bool::weighted(0.2), indices(PRINCIPAL_ENTRIES)),
        (prop::bool::weighted(0.2), indices(ACTION_PATTERNS.len())),
        (prop::bool::weighted(0.2), indices(RESOURCE_PATTERNS.len())),
        prop::collection::vec(0..CONDITIONS.len(), 0..=2),
    )
        .prop_map(|(allow, principals, actions, resources, conditions)| {
            // One condition per (operator, key): JSON objects have no
            // repeated keys.
            let mut seen = Vec::new();
            let conditions = conditions
                .into_iter()
                .filter(|&c| {
                    let id = (CONDITIONS[c].0, CONDITIONS[c].1);
                    let fresh = !seen.contains(&id);
                    seen.push(id);
                    fresh
                })
                .collect();
            Stmt {
                allow,
                principals: Some(principals),
                actions,
                resources,
                conditions,
            }
        })
}

fn doc() -> impl Strategy<Value = Doc> {
    (
        prop::bool::weighted(0.85),
        prop::collection::vec(statement(), 1..=3),
    )
        .prop_map(|(version_2012, statements)| Doc {
            version_2012,
            statements,
        })
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        prop::collection::vec(doc(), 0..=2),
        prop::option::of(doc()),
        prop::sample::select(vec![None, Some(A), Some(B)]),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(identity, bucket, owner, acl)| Setup {
            identity,
            bucket,
            owner,
            acl,
        })
}

fn values() -> impl Strategy<Value = Values> {
    use prop::sample::select;
    (
        select(vec![None, Some("a"), Some("ab"), Some("b"), Some("alice")]),
        select(vec![None, Some("alice"), Some("/")]),
        select(vec![None, Some("true"), Some("false")]),
        select(vec![None, Some("10.1.2.3"), Some("192.168.1.1")]),
        select(vec![None, Some("5"), Some("50"), Some("x")]),
        select(vec![vec![], vec!["x"], vec!["x", "y"], vec!["x", "z"]]),
    )
        .prop_map(
            |(prefix, delimiter, secure, ip, max_keys, tag_keys)| Values {
                prefix,
                delimiter,
                secure,
                ip,
                max_keys,
                tag_keys,
            },
        )
}

fn asked() -> impl Strategy<Value = Asked> {
    (0..CALLERS, 0..ACTIONS.len(), 0..RESOURCES.len(), values()).prop_map(
        |(caller, action, resource, values)| Asked {
            caller,
            action,
            resource,
            values,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn evaluator_agrees_with_the_model(setup in setup(), requests in prop::collection::vec(asked(), 1..24)) {
        let parse = |d: &Doc, kind| {
            let json = render(d, kind);
            Policy::parse(&json, kind).map_err(|e| TestCaseError::fail(format!("{e}: {json}")))
        };
        let identity = setup.identity.iter().map(|d| parse(d, PolicyKind::Identity)).collect::<Result<Vec<_>, _>>()?;
        let bucket = setup.bucket.as_ref().map(|d| parse(d, PolicyKind::Resource)).transpose()?;
        for asked in &requests {
            let who = caller(asked.caller);
            let ctx = context(&asked.values);
            let request = Request {
                principal: &who,
                action: ACTIONS[asked.action],
                resource: RESOURCES[asked.resource],
                context: &ctx,
            };
            for (policy, d) in identity.iter().zip(&setup.identity) {
                prop_assert_eq!(policy.evaluate(&request), model_effect(d, PolicyKind::Identity, asked),
                    "identity {} for {:?}", render(d, PolicyKind::Identity), asked);
            }
            if let (Some(policy), Some(d)) = (&bucket, &setup.bucket) {
                prop_assert_eq!(policy.evaluate(&request), model_effect(d, PolicyKind::Resource, asked),
                    "bucket {} for {:?}", render(d, PolicyKind::Resource), asked);
            }
            let callers_policies: Vec<&Policy> = if who.user_name().is_some() {
                identity.iter().collect()
            } else {
                Vec::new()
            };
            let got = authorize(&Authorization {
                request: &request,
                identity_policies: &callers_policies,
                resource_owner: setup.owner,
                bucket_policy: bucket.as_ref(),
                acl_grants: setup.acl,
            });
            prop_assert_eq!(got, model_verdict(&setup, asked), "{:?} {:?}", setup, asked);
        }
    }
}
