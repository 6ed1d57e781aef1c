//! The Condition element: operators, keys, their values, and how one
//! condition is decided against a request, as the IAM User Guide documents
//! it ("Condition operators", "Conditions with multiple context keys or
//! values").

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::matching::Template;
use crate::request::Request;
use crate::{malformed, PolicyError};

/// Condition keys a policy may test (compared without case).
pub const CONDITION_KEYS: &[&str] = &[
    "aws:SourceIp",
    "aws:SecureTransport",
    "aws:username",
    "aws:userid",
    "aws:PrincipalAccount",
    "aws:PrincipalType",
    "aws:CurrentTime",
    "aws:EpochTime",
    "aws:Referer",
    "aws:UserAgent",
    "s3:prefix",
    "s3:delimiter",
    "s3:max-keys",
    "s3:x-amz-acl",
    "s3:x-amz-server-side-encryption",
    "s3:x-amz-server-side-encryption-aws-kms-key-id",
    "s3:x-amz-server-side-encryption-customer-algorithm",
    "s3:x-amz-grant-read",
    "s3:x-amz-grant-write",
    "s3:x-amz-grant-read-acp",
    "s3:x-amz-grant-write-acp",
    "s3:x-amz-grant-full-control",
    "s3:x-amz-copy-source",
    "s3:x-amz-metadata-directive",
    "s3:VersionId",
    "s3:signatureversion",
    "s3:authType",
    "s3:RequestObjectTagKeys",
    "s3:object-lock-mode",
    "s3:object-lock-retain-until-date",
    "s3:object-lock-legal-hold",
    "s3:object-lock-remaining-retention-days",
];

/// Keys followed by a tag key, e.g. `s3:ExistingObjectTag/environment`.
pub const CONDITION_KEY_PREFIXES: &[&str] = &["s3:ExistingObjectTag/", "s3:RequestObjectTag/"];

/// The lowercased key if it is one we support.
pub(crate) fn canonical_key(name: &str) -> Option<String> {
    let lower = name.to_lowercase();
    let known = CONDITION_KEYS.iter().any(|k| k.to_lowercase() == lower)
        || CONDITION_KEY_PREFIXES.iter().any(|p| {
            lower
                .strip_prefix(&p.to_lowercase())
                .is_some_and(|tag| !tag.is_empty())
        });
    known.then_some(lower)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Set {
    /// No set qualifier: any request value may match (all must, negated).
    Plain,
    ForAllValues,
    ForAnyValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl Order {
    fn holds<T: PartialOrd>(self, request: T, policy: T) -> bool {
        match self {
            Order::Equal => request == policy,
            Order::Less => request < policy,
            Order::LessOrEqual => request <= policy,
            Order::Greater => request > policy,
            Order::GreaterOrEqual => request >= policy,
        }
    }
}

/// What one request value is compared with.
#[derive(Debug, Clone, PartialEq)]
enum Test {
    String {
        values: Vec<Template>,
        ignore_case: bool,
    },
    Numeric(Order, Vec<f64>),
    /// Nanoseconds since the epoch.
    Date(Order, Vec<i128>),
    Bool(Vec<bool>),
    Ip(Vec<IpNet>),
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Null(Vec<bool>),
    Match {
        test: Test,
        /// StringNotEquals, NotIpAddress, ...: a request value passes when
        /// it matches none of the policy's values.
        negated: bool,
        if_exists: bool,
        set: Set,
    },
}

/// One operator applied to one key: `"StringLike": {"s3:prefix": [...]}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    key: String,
    kind: Kind,
}

/// How an operator's values parse and compare; `base_operator` pairs each
/// name with its family and whether it is negated.
#[derive(Clone, Copy)]
enum Family {
    String { ignore_case: bool, like: bool },
    Numeric(Order),
    Date(Order),
    Bool,
    Ip,
}

fn base_operator(name: &str) -> Option<(Family, bool)> {
    use Family::*;
    let string = |ignore_case, like| String { ignore_case, like };
    Some(match name {
        "StringEquals" => (string(false, false), false),
        "StringNotEquals" => (string(false, false), true),
        "StringEqualsIgnoreCase" => (string(true, false), false),
        "StringNotEqualsIgnoreCase" => (string(true, false), true),
        "StringLike" => (string(false, true), false),
        "StringNotLike" => (string(false, true), true),
        "NumericEquals" => (Numeric(Order::Equal), false),
        "NumericNotEquals" => (Numeric(Order::Equal), true),
        "NumericLessThan" => (Numeric(Order::Less), false),
        "NumericLessThanEquals" => (Numeric(Order::LessOrEqual), false),
        "NumericGreaterThan" => (Numeric(Order::Greater), false),
        "NumericGreaterThanEquals" => (Numeric(Order::GreaterOrEqual), false),
        "DateEquals" => (Date(Order::Equal), false),
        "DateNotEquals" => (Date(Order::Equal), true),
        "DateLessThan" => (Date(Order::Less), false),
        "DateLessThanEquals" => (Date(Order::LessOrEqual), false),
        "DateGreaterThan" => (Date(Order::Greater), false),
        "DateGreaterThanEquals" => (Date(Order::GreaterOrEqual), false),
        "Bool" => (Bool, false),
        "IpAddress" => (Ip, false),
        "NotIpAddress" => (Ip, true),
        _ => return None,
    })
}

/// Parses a whole Condition element. `variables`: policy variables are
/// substituted in string values (Version 2012-10-17).
pub(crate) fn parse_conditions(
    block: &Value,
    variables: bool,
) -> Result<Vec<Condition>, PolicyError> {
    let Value::Object(operators) = block else {
        return Err(malformed("Condition must be a JSON object"));
    };
    let mut conditions = Vec::new();
    for (operator, keys) in operators {
        let Value::Object(keys) = keys else {
            return Err(malformed(format!(
                "Condition operator {operator} must map keys to values"
            )));
        };
        for (key, values) in keys {
            conditions.push(parse_condition(operator, key, values, variables)?);
        }
    }
    Ok(conditions)
}

/// An operator name taken apart: `ForAnyValue:StringLikeIfExists`.
enum Operator {
    Null,
    Match {
        set: Set,
        if_exists: bool,
        family: Family,
        negated: bool,
    },
}

fn parse_operator(name: &str) -> Option<Operator> {
    if name == "Null" {
        return Some(Operator::Null);
    }
    let (set, rest) = if let Some(rest) = name.strip_prefix("ForAllValues:") {
        (Set::ForAllValues, rest)
    } else if let Some(rest) = name.strip_prefix("ForAnyValue:") {
        (Set::ForAnyValue, rest)
    } else {
        (Set::Plain, name)
    };
    let (if_exists, base) = match rest.strip_suffix("IfExists") {
        Some(base) => (true, base),
        None => (false, rest),
    };
    let (family, negated) = base_operator(base)?;
    Some(Operator::Match {
        set,
        if_exists,
        family,
        negated,
    })
}

fn parse_condition(
    operator: &str,
    key: &str,
    values: &Value,
    variables: bool,
) -> Result<Condition, PolicyError> {
    let parsed = parse_operator(operator).ok_or_else(|| {
        malformed(format!(
            "Policy has an invalid condition operator: {operator}"
        ))
    })?;
    let canonical = canonical_key(key)
        .ok_or_else(|| malformed(format!("Policy has an invalid condition key: {key}")))?;
    let values = scalars(values).ok_or_else(|| {
        malformed(format!(
            "Condition {operator} on {key} must have a string, number or boolean, \
             or a non-empty array of them"
        ))
    })?;
    let bad_value = |v: &Value| {
        malformed(format!(
            "Condition {operator} on {key} has an invalid value: {v}"
        ))
    };
    let (set, if_exists, family, negated) = match parsed {
        Operator::Null => {
            let flags = values
                .iter()
                .map(|v| parse_bool(v).ok_or_else(|| bad_value(v)))
                .collect::<Result<_, _>>()?;
            return Ok(Condition {
                key: canonical,
                kind: Kind::Null(flags),
            });
        }
        Operator::Match {
            set,
            if_exists,
            family,
            negated,
        } => (set, if_exists, family, negated),
    };

    let test = match family {
        Family::String { ignore_case, like } => Test::String {
            values: values
                .iter()
                .map(|v| {
                    Template::parse(&scalar_text(v), like, variables)
                        .map_err(|why| malformed(format!("Condition {operator} on {key}: {why}")))
                })
                .collect::<Result<_, _>>()?,
            ignore_case,
        },
        Family::Numeric(order) => Test::Numeric(
            order,
            values
                .iter()
                .map(|v| policy_number(v).ok_or_else(|| bad_value(v)))
                .collect::<Result<_, _>>()?,
        ),
        Family::Date(order) => Test::Date(
            order,
            values
                .iter()
                .map(|v| policy_date(v).ok_or_else(|| bad_value(v)))
                .collect::<Result<_, _>>()?,
        ),
        Family::Bool => Test::Bool(
            values
                .iter()
                .map(|v| parse_bool(v).ok_or_else(|| bad_value(v)))
                .collect::<Result<_, _>>()?,
        ),
        Family::Ip => Test::Ip(
            values
                .iter()
                .map(|v| policy_network(v).ok_or_else(|| bad_value(v)))
                .collect::<Result<_, _>>()?,
        ),
    };
    Ok(Condition {
        key: canonical,
        kind: Kind::Match {
            test,
            negated,
            if_exists,
            set,
        },
    })
}

/// A value or a non-empty array of values, each a string, number or bool.
fn scalars(value: &Value) -> Option<Vec<&Value>> {
    let scalar = |v: &Value| matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_));
    match value {
        Value::Array(items) if !items.is_empty() && items.iter().all(scalar) => {
            Some(items.iter().collect())
        }
        v if scalar(v) => Some(vec![v]),
        _ => None,
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn parse_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => text_bool(s),
        _ => None,
    }
}

fn text_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

fn text_number(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|n| n.is_finite())
}

fn policy_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64().filter(|n| n.is_finite()),
        Value::String(s) => text_number(s),
        _ => None,
    }
}

/// RFC 3339, or whole seconds since the epoch.
fn text_date(s: &str) -> Option<i128> {
    if let Ok(secs) = s.parse::<i64>() {
        return Some(i128::from(secs) * 1_000_000_000);
    }
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp_nanos)
}

fn policy_date(value: &Value) -> Option<i128> {
    match value {
        Value::Number(n) => n.as_i64().map(|secs| i128::from(secs) * 1_000_000_000),
        Value::String(s) => text_date(s),
        _ => None,
    }
}

/// A CIDR block, or a single address (as a /32 or /128).
fn policy_network(value: &Value) -> Option<IpNet> {
    let Value::String(s) = value else {
        return None;
    };
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

fn network_contains(net: &IpNet, addr: IpAddr) -> bool {
    // A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d.
    let addr = match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    };
    net.contains(&addr)
}

impl Test {
    /// Whether one request value equals (or is ordered as asked with, or
    /// lies within) any of the policy's values; None when the request value
    /// is not of the operator's type (then it passes neither the operator
    /// nor its negation).
    fn matches_any(&self, value: &str, request: &Request<'_>) -> Option<bool> {
        Some(match self {
            Test::String {
                values,
                ignore_case,
            } => values.iter().any(|t| {
                t.resolve(|k| request.variable(k))
                    .is_some_and(|p| p.matches(value, *ignore_case))
            }),
            Test::Numeric(order, values) => {
                let n = text_number(value)?;
                values.iter().any(|p| order.holds(n, *p))
            }
            Test::Date(order, values) => {
                let d = text_date(value)?;
                values.iter().any(|p| order.holds(d, *p))
            }
            Test::Bool(values) => values.contains(&text_bool(value)?),
            Test::Ip(nets) => {
                let addr = value.parse::<IpAddr>().ok()?;
                nets.iter().any(|n| network_contains(n, addr))
            }
        })
    }
}

impl Condition {
    pub(crate) fn holds(&self, request: &Request<'_>) -> bool {
        let values = request.values(&self.key);
        match &self.kind {
            Kind::Null(flags) => flags.contains(&values.is_none()),
            Kind::Match {
                test,
                negated,
                if_exists,
                set,
            } => {
                let Some(values) = values else {
                    return match set {
                        Set::ForAllValues => true,
                        Set::ForAnyValue => *if_exists,
                        // "If the policy condition requires that the key is
                        // not matched ... and the key is not present, the
                        // condition is true."
                        Set::Plain => *if_exists || *negated,
                    };
                };
                let passes = |v: &str| test.matches_any(v, request) == Some(!*negated);
                match set {
                    Set::ForAllValues => values.all(passes),
                    Set::ForAnyValue => values.any(passes),
                    // Negated operators NOR over the values: no request
                    // value may match any policy value.
                    Set::Plain if *negated => values.all(passes),
                    Set::Plain => values.any(passes),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_case_insensitive_and_tag_keys_need_a_tag() {
        assert_eq!(
            canonical_key("AWS:SourceIP").as_deref(),
            Some("aws:sourceip")
        );
        assert_eq!(
            canonical_key("s3:ExistingObjectTag/Env").as_deref(),
            Some("s3:existingobjecttag/env")
        );
        assert!(canonical_key("s3:ExistingObjectTag/").is_none());
        assert!(canonical_key("aws:RequestedRegion").is_none());
    }

    #[test]
    fn dates_are_rfc3339_or_epoch_seconds() {
        assert_eq!(text_date("0"), Some(0));
        assert_eq!(
            text_date("2020-01-01T00:00:00Z"),
            Some(1_577_836_800_000_000_000)
        );
        assert_eq!(
            text_date("2020-01-01T01:00:00+01:00"),
            text_date("2020-01-01T00:00:00Z")
        );
        assert_eq!(text_date("2020-01-01"), None);
        assert_eq!(text_date("yesterday"), None);
    }

    #[test]
    fn numbers_must_be_finite() {
        assert_eq!(text_number("10"), Some(10.0));
        assert_eq!(text_number("2.5"), Some(2.5));
        assert_eq!(text_number("NaN"), None);
        assert_eq!(text_number("inf"), None);
        assert_eq!(text_number("ten"), None);
    }

    #[test]
    fn mapped_ipv4_clients_match_ipv4_blocks() {
        let net: IpNet = "192.0.2.0/24".parse().unwrap();
        assert!(network_contains(&net, "::ffff:192.0.2.7".parse().unwrap()));
        assert!(!network_contains(&net, "::ffff:192.0.3.7".parse().unwrap()));
    }
}
