//! Policy documents from their JSON: the IAM grammar (Version, Statement,
//! Effect, Principal, Action, Resource, Condition and their Not forms),
//! checked strictly so that a policy either means exactly what AWS would
//! make of it or is refused with a message naming what is wrong.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::actions::parse_action;
use crate::conditions::{parse_conditions, Condition};
use crate::matching::{Pattern, Template};
use crate::{malformed, PolicyError, MAX_POLICY_BYTES};

pub(crate) const S3_ARN_PREFIX: &str = "arn:aws:s3:::";

/// Where a policy is attached, which decides whether it names principals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// Attached to a user: the user is the principal, so a statement may not
    /// name one.
    Identity,
    /// A bucket policy: every statement names its Principal or NotPrincipal.
    Resource,
}

/// A parsed policy document, ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub(crate) kind: PolicyKind,
    pub(crate) statements: Vec<Statement>,
}

/// A list that matches what it names, or (the `Not` form) everything else.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Element<T> {
    pub(crate) items: Vec<T>,
    pub(crate) negated: bool,
}

impl<T> Element<T> {
    pub(crate) fn matches(&self, f: impl FnMut(&T) -> bool) -> bool {
        self.items.iter().any(f) != self.negated
    }
}

/// One entry of a Principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PrincipalEntry {
    /// `"*"` or `{"AWS": "*"}`: anyone, anonymous callers included.
    Everyone,
    /// An account id or `arn:aws:iam::ACCOUNT:root`: every principal of the
    /// account (never an anonymous caller).
    Account(String),
    User {
        account: String,
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Statement {
    pub(crate) allow: bool,
    /// None in identity policies.
    pub(crate) principals: Option<Element<PrincipalEntry>>,
    pub(crate) actions: Element<Pattern>,
    pub(crate) resources: Element<Template>,
    pub(crate) conditions: Vec<Condition>,
}

const TOP_FIELDS: [&str; 3] = ["Version", "Id", "Statement"];
const STATEMENT_FIELDS: [&str; 9] = [
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];

impl Policy {
    /// Parses and validates a policy document of at most
    /// [`MAX_POLICY_BYTES`].
    pub fn parse(json: &str, kind: PolicyKind) -> Result<Policy, PolicyError> {
        if json.len() > MAX_POLICY_BYTES {
            return Err(PolicyError::TooLarge {
                size_bytes: json.len(),
                limit_bytes: MAX_POLICY_BYTES,
            });
        }
        // serde_json bounds nesting (128 levels), so a hostile document
        // cannot exhaust the stack here.
        let document: Value = serde_json::from_str(json)
            .map_err(|e| malformed(format!("Policy is not valid JSON: {e}")))?;
        let Value::Object(top) = document else {
            return Err(malformed("Policy must be a JSON object"));
        };
        check_fields(&top, &TOP_FIELDS, "Policy")?;
        // Without a Version, AWS reads a policy as 2008-10-17, where
        // `${...}` is plain text.
        let variables = match top.get("Version") {
            None => false,
            Some(Value::String(v)) if v == "2012-10-17" => true,
            Some(Value::String(v)) if v == "2008-10-17" => false,
            Some(v) => return Err(malformed(format!("Policy has an invalid Version: {v}"))),
        };
        if top.get("Id").is_some_and(|id| !id.is_string()) {
            return Err(malformed("Policy Id must be a string"));
        }
        let statements = match top.get("Statement") {
            None => return Err(malformed("Policy has no Statement")),
            Some(Value::Array(items)) if items.is_empty() => {
                return Err(malformed("Policy has no Statement"))
            }
            Some(Value::Array(items)) => items.iter().collect(),
            Some(one) => vec![one],
        };
        let mut sids = HashSet::new();
        let statements = statements
            .into_iter()
            .map(|s| parse_statement(s, kind, variables, &mut sids))
            .collect::<Result<_, _>>()?;
        Ok(Policy { kind, statements })
    }

    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    /// Every Resource and NotResource pattern as written, so the server can
    /// check that a bucket policy names only its own bucket.
    pub fn resources(&self) -> impl Iterator<Item = &str> {
        self.statements
            .iter()
            .flat_map(|s| s.resources.items.iter().map(Template::source))
    }
}

fn check_fields(
    object: &Map<String, Value>,
    known: &[&str],
    what: &str,
) -> Result<(), PolicyError> {
    match object.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(malformed(format!("{what} has an unknown field: {unknown}"))),
        None => Ok(()),
    }
}

fn parse_statement(
    value: &Value,
    kind: PolicyKind,
    variables: bool,
    sids: &mut HashSet<String>,
) -> Result<Statement, PolicyError> {
    let Value::Object(statement) = value else {
        return Err(malformed("Policy Statement must be a JSON object"));
    };
    check_fields(statement, &STATEMENT_FIELDS, "Statement")?;
    match statement.get("Sid") {
        Some(Value::String(sid)) if !sids.insert(sid.clone()) => {
            return Err(malformed(format!(
                "Statement ids (Sid) must be unique: {sid} is repeated"
            )));
        }
        None | Some(Value::String(_)) => {}
        Some(_) => return Err(malformed("Statement Sid must be a string")),
    }
    let allow = match statement.get("Effect") {
        Some(Value::String(e)) if e == "Allow" => true,
        Some(Value::String(e)) if e == "Deny" => false,
        Some(e) => {
            return Err(malformed(format!(
                "Statement has an invalid Effect: {e} (Allow or Deny)"
            )))
        }
        None => return Err(malformed("Statement has no Effect")),
    };

    let principals = match (kind, one_of(statement, "Principal", "NotPrincipal")?) {
        (PolicyKind::Identity, Some(_)) => {
            return Err(malformed(
                "Policy has an invalid principal: an identity policy may not name a Principal or NotPrincipal",
            ))
        }
        (PolicyKind::Identity, None) => None,
        (PolicyKind::Resource, None) => {
            return Err(malformed(
                "Policy has an invalid principal: each statement of a bucket policy needs a Principal or NotPrincipal",
            ))
        }
        (PolicyKind::Resource, Some((value, negated))) => Some(Element {
            items: parse_principal(value)?,
            negated,
        }),
    };

    let (actions, negated) = one_of(statement, "Action", "NotAction")?
        .ok_or_else(|| malformed("Statement has no Action or NotAction"))?;
    let actions = Element {
        items: strings(actions, "Action")?
            .into_iter()
            .map(parse_action)
            .collect::<Result<_, _>>()?,
        negated,
    };

    let (resources, negated) = one_of(statement, "Resource", "NotResource")?
        .ok_or_else(|| malformed("Statement has no Resource or NotResource"))?;
    let resources = Element {
        items: strings(resources, "Resource")?
            .into_iter()
            .map(|r| parse_resource(r, variables))
            .collect::<Result<_, _>>()?,
        negated,
    };

    let conditions = match statement.get("Condition") {
        Some(block) => parse_conditions(block, variables)?,
        None => Vec::new(),
    };
    Ok(Statement {
        allow,
        principals,
        actions,
        resources,
        conditions,
    })
}

/// The element named `plain` or `not` (with whether it was `not`); an error
/// when both are present.
fn one_of<'v>(
    statement: &'v Map<String, Value>,
    plain: &str,
    not: &str,
) -> Result<Option<(&'v Value, bool)>, PolicyError> {
    match (statement.get(plain), statement.get(not)) {
        (Some(_), Some(_)) => Err(malformed(format!(
            "Statement may have {plain} or {not}, not both"
        ))),
        (Some(v), None) => Ok(Some((v, false))),
        (None, Some(v)) => Ok(Some((v, true))),
        (None, None) => Ok(None),
    }
}

fn strings<'v>(value: &'v Value, what: &str) -> Result<Vec<&'v str>, PolicyError> {
    let invalid = || {
        malformed(format!(
            "{what} must be a string or a non-empty array of strings"
        ))
    };
    match value {
        Value::String(s) => Ok(vec![s]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|v| v.as_str().ok_or_else(invalid))
            .collect(),
        _ => Err(invalid()),
    }
}

fn parse_resource(text: &str, variables: bool) -> Result<Template, PolicyError> {
    let invalid = |why: &str| malformed(format!("Policy has invalid resource: \"{text}\"{why}"));
    let named = text
        .strip_prefix(S3_ARN_PREFIX)
        .is_some_and(|rest| !rest.is_empty());
    if text != "*" && !named {
        return Err(invalid(" (only * and arn:aws:s3:::... are allowed)"));
    }
    Template::parse(text, true, variables).map_err(|why| invalid(&format!(": {why}")))
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn parse_principal(value: &Value) -> Result<Vec<PrincipalEntry>, PolicyError> {
    let invalid = |what: &dyn std::fmt::Display| {
        malformed(format!("Policy has an invalid principal: {what}"))
    };
    let map = match value {
        Value::String(s) if s == "*" => return Ok(vec![PrincipalEntry::Everyone]),
        Value::Object(map) if !map.is_empty() => map,
        other => return Err(invalid(other)),
    };
    let mut entries = Vec::new();
    for (scheme, ids) in map {
        let ids = strings(ids, "Principal")?;
        for id in ids {
            let entry = match scheme.as_str() {
                "AWS" => parse_aws_principal(id),
                // Strata's canonical user id is the account id.
                "CanonicalUser" if is_account_id(id) => {
                    Some(PrincipalEntry::Account(id.to_string()))
                }
                _ => None,
            };
            entries.push(entry.ok_or_else(|| invalid(&format!("{{\"{scheme}\": \"{id}\"}}")))?);
        }
    }
    Ok(entries)
}

fn parse_aws_principal(id: &str) -> Option<PrincipalEntry> {
    if id == "*" {
        return Some(PrincipalEntry::Everyone);
    }
    if is_account_id(id) {
        return Some(PrincipalEntry::Account(id.to_string()));
    }
    let (account, name) = id.strip_prefix("arn:aws:iam::")?.split_once(':')?;
    if !is_account_id(account) {
        return None;
    }
    if name == "root" {
        return Some(PrincipalEntry::Account(account.to_string()));
    }
    let user = name.strip_prefix("user/")?;
    // AWS allows no wildcards in principal ARNs: only `*` on its own.
    if user.is_empty() || user.contains(['*', '?']) {
        return None;
    }
    Some(PrincipalEntry::User {
        account: account.to_string(),
        name: user.to_string(),
    })
}
