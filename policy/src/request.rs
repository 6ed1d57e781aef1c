//! What the server tells the evaluator about one request: who asks, the
//! action and resource, and the values condition keys test.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Who makes the request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// No credentials (or credentials the server chose to ignore).
    Anonymous,
    /// A signed request: an account (12 digits) and, unless the account's
    /// root signed it, the user within it.
    Authenticated {
        account: String,
        user: Option<String>,
    },
}

impl Principal {
    pub fn root(account: impl Into<String>) -> Principal {
        Principal::Authenticated {
            account: account.into(),
            user: None,
        }
    }

    pub fn user(account: impl Into<String>, name: impl Into<String>) -> Principal {
        Principal::Authenticated {
            account: account.into(),
            user: Some(name.into()),
        }
    }

    pub fn account(&self) -> Option<&str> {
        match self {
            Principal::Anonymous => None,
            Principal::Authenticated { account, .. } => Some(account),
        }
    }

    pub fn user_name(&self) -> Option<&str> {
        match self {
            Principal::Authenticated {
                user: Some(name), ..
            } => Some(name),
            _ => None,
        }
    }

    pub fn is_root(&self) -> bool {
        matches!(self, Principal::Authenticated { user: None, .. })
    }

    /// `arn:aws:iam::ACCOUNT:root` or `arn:aws:iam::ACCOUNT:user/NAME`;
    /// None for an anonymous caller.
    pub fn arn(&self) -> Option<String> {
        match self {
            Principal::Anonymous => None,
            Principal::Authenticated { account, user } => Some(match user {
                None => format!("arn:aws:iam::{account}:root"),
                Some(name) => format!("arn:aws:iam::{account}:user/{name}"),
            }),
        }
    }
}

/// Condition values of one request, by key. Keys are compared without case
/// (as AWS compares condition keys, tag keys of `s3:ExistingObjectTag/...`
/// included). A key may hold several values (`s3:RequestObjectTagKeys`); a
/// key with no value is absent, which is what `Null`, `...IfExists` and the
/// set operators test.
///
/// `aws:username`, `aws:userid`, `aws:PrincipalAccount` and
/// `aws:PrincipalType` are not read from here but from the request's
/// [`Principal`], so they cannot disagree with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    // A handful of keys per request: a vector beats a map to build and search.
    entries: Vec<(String, Vec<String>)>,
}

impl Context {
    pub fn new() -> Context {
        Context::default()
    }

    /// Adds one value to `key` (after any it already has).
    pub fn add(&mut self, key: &str, value: impl Into<String>) {
        let key = key.to_lowercase();
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, values)) => values.push(value),
            None => self.entries.push((key, vec![value])),
        }
    }

    /// [`Context::add`], for building a context in one expression.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Context {
        self.add(key, value);
        self
    }

    /// Sets `aws:EpochTime` and `aws:CurrentTime` (RFC 3339, UTC) to the
    /// request's time; the crate has no clock of its own.
    pub fn with_request_time(mut self, unix_secs: i64) -> Context {
        self.add("aws:EpochTime", unix_secs.to_string());
        // Only a time past year 9999 has no RFC 3339 form; the epoch key
        // still carries it.
        let current = OffsetDateTime::from_unix_timestamp(unix_secs)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok());
        if let Some(current) = current {
            self.add("aws:CurrentTime", current);
        }
        self
    }

    /// The values of `key`, None when it has none.
    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.get_lowercase(&key.to_lowercase())
    }

    fn get_lowercase(&self, key: &str) -> Option<&[String]> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
            .filter(|v| !v.is_empty())
    }
}

/// One request to authorise.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub principal: &'a Principal,
    /// `service:Name`, e.g. `s3:GetObject` (compared without case).
    pub action: &'a str,
    /// `arn:aws:s3:::bucket/key`, `arn:aws:s3:::bucket`, or `*` for an
    /// action on no bucket (ListAllMyBuckets, CreateBucket, admin). `*` is
    /// matched by a Resource of `*` or one covering every S3 resource
    /// (`arn:aws:s3:::*`), as AWS lets such a statement grant
    /// ListAllMyBuckets.
    pub resource: &'a str,
    pub context: &'a Context,
}

/// The values one condition key has in a request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Values<'a> {
    One(&'a str),
    Many(&'a [String]),
}

impl<'a> Values<'a> {
    pub(crate) fn any(self, mut f: impl FnMut(&'a str) -> bool) -> bool {
        match self {
            Values::One(v) => f(v),
            Values::Many(vs) => vs.iter().any(|v| f(v)),
        }
    }

    pub(crate) fn all(self, mut f: impl FnMut(&'a str) -> bool) -> bool {
        match self {
            Values::One(v) => f(v),
            Values::Many(vs) => vs.iter().all(|v| f(v)),
        }
    }

    /// A policy variable takes a single-valued key only (as in AWS).
    fn single(self) -> Option<&'a str> {
        match self {
            Values::One(v) => Some(v),
            Values::Many([v]) => Some(v),
            Values::Many(_) => None,
        }
    }
}

impl<'a> Request<'a> {
    /// `key` is lowercased (as the parser stores condition keys).
    pub(crate) fn values(&self, key: &str) -> Option<Values<'a>> {
        let principal = self.principal;
        match key {
            "aws:username" => principal.user_name().map(Values::One),
            // Strata has no opaque user ids: a user's id is its name, the
            // root's its account, as AWS uses the account id for the root.
            "aws:userid" => Some(Values::One(match principal {
                Principal::Anonymous => "anonymous",
                Principal::Authenticated { account, user } => user.as_deref().unwrap_or(account),
            })),
            "aws:principalaccount" => principal.account().map(Values::One),
            "aws:principaltype" => Some(Values::One(match principal {
                Principal::Anonymous => "Anonymous",
                Principal::Authenticated { user: None, .. } => "Account",
                Principal::Authenticated { .. } => "User",
            })),
            _ => self.context.get_lowercase(key).map(Values::Many),
        }
    }

    pub(crate) fn variable(&self, key: &str) -> Option<&'a str> {
        self.values(key).and_then(Values::single)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_case_insensitive_and_values_accumulate() {
        let mut c = Context::new();
        c.add("s3:RequestObjectTagKeys", "a");
        c.add("S3:REQUESTOBJECTTAGKEYS", "b");
        assert_eq!(c.get("s3:requestobjecttagkeys").unwrap(), ["a", "b"]);
        assert!(c.get("s3:prefix").is_none());
    }

    #[test]
    fn request_time_fills_both_time_keys() {
        let c = Context::new().with_request_time(1_700_000_000);
        assert_eq!(c.get("aws:EpochTime").unwrap(), ["1700000000"]);
        assert_eq!(c.get("aws:CurrentTime").unwrap(), ["2023-11-14T22:13:20Z"]);
        let far = Context::new().with_request_time(i64::MAX);
        assert!(far.get("aws:CurrentTime").is_none());
    }

    #[test]
    fn principal_keys_come_from_the_principal() {
        let ctx = Context::new().with("aws:username", "mallory");
        let alice = Principal::user("111122223333", "alice");
        let req = Request {
            principal: &alice,
            action: "s3:GetObject",
            resource: "*",
            context: &ctx,
        };
        assert_eq!(req.variable("aws:username"), Some("alice"));
        assert_eq!(req.variable("aws:principalaccount"), Some("111122223333"));
        assert_eq!(req.variable("aws:principaltype"), Some("User"));
        let root = Principal::root("111122223333");
        let req = Request {
            principal: &root,
            ..req
        };
        assert_eq!(req.variable("aws:username"), None);
        assert_eq!(req.variable("aws:userid"), Some("111122223333"));
        assert_eq!(
            root.arn().as_deref(),
            Some("arn:aws:iam::111122223333:root")
        );
        assert_eq!(
            alice.arn().as_deref(),
            Some("arn:aws:iam::111122223333:user/alice")
        );
        assert_eq!(Principal::Anonymous.arn(), None);
    }
}
