//! The canned identity policies every deployment has, named as MinIO names
//! them so that tooling written for MinIO (`mc admin policy attach ...
//! readwrite`) works unchanged.

use crate::parse::{Policy, PolicyKind};

/// The names [`builtin`] knows.
pub const BUILTIN_NAMES: &[&str] = &["readonly", "readwrite", "writeonly", "consoleAdmin"];

const READONLY: &str = r#"{"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow",
    "Action": ["s3:GetBucketLocation", "s3:GetObject"],
    "Resource": ["arn:aws:s3:::*"]}]}"#;

const READWRITE: &str = r#"{"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow",
    "Action": ["s3:*"],
    "Resource": ["arn:aws:s3:::*"]}]}"#;

const WRITEONLY: &str = r#"{"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow",
    "Action": ["s3:PutObject"],
    "Resource": ["arn:aws:s3:::*"]}]}"#;

const CONSOLE_ADMIN: &str = r#"{"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["admin:*"], "Resource": ["*"]},
    {"Effect": "Allow", "Action": ["kms:*"], "Resource": ["*"]},
    {"Effect": "Allow", "Action": ["s3:*"], "Resource": ["*"]}]}"#;

/// A built-in identity policy by name (case-sensitive, as MinIO's are).
pub fn builtin(name: &str) -> Option<Policy> {
    let text = match name {
        "readonly" => READONLY,
        "readwrite" => READWRITE,
        "writeonly" => WRITEONLY,
        "consoleAdmin" => CONSOLE_ADMIN,
        _ => return None,
    };
    // The texts are constants; the tests parse every one of them.
    Policy::parse(text, PolicyKind::Identity).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_parses() {
        for name in BUILTIN_NAMES {
            assert!(builtin(name).is_some(), "{name}");
        }
        assert!(builtin("ReadOnly").is_none());
        assert!(builtin("root").is_none());
    }
}
