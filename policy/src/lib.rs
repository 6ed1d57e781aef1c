//! The IAM policy language as S3 uses it: identity policies attached to users
//! and bucket policies attached to buckets, parsed from their JSON, evaluated
//! against one request, and combined with ACLs in AWS's order.
//!
//! Pure: no I/O and no clock. The server describes each request (who, what,
//! on which resource, with which condition values) and asks [`authorize`].

mod actions;
mod authorize;
mod builtin;
mod conditions;
mod evaluate;
mod matching;
mod parse;
mod request;

pub use actions::{ADMIN_ACTIONS, KMS_ACTIONS, S3_ACTIONS};
pub use authorize::{authorize, Authorization, Verdict, OWNER_ALWAYS_ALLOWED};
pub use builtin::{builtin, BUILTIN_NAMES};
pub use conditions::{CONDITION_KEYS, CONDITION_KEY_PREFIXES};
pub use evaluate::Effect;
pub use parse::{Policy, PolicyKind};
pub use request::{Context, Principal, Request};

/// The largest policy document accepted, in bytes: S3's bucket policy limit,
/// applied to identity policies too. It also bounds the work one evaluation
/// can do, since every pattern and value comes from the document.
pub const MAX_POLICY_BYTES: usize = 20 * 1024;

/// Why a policy document was refused. The Display text is what the client
/// sees in the error response, so it names the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The document is not a policy this crate accepts (S3's
    /// `MalformedPolicy`).
    #[error("{0}")]
    Malformed(String),
    /// The document is longer than [`MAX_POLICY_BYTES`].
    #[error("Policy document is {size_bytes} bytes, more than the {limit_bytes} allowed")]
    TooLarge {
        size_bytes: usize,
        limit_bytes: usize,
    },
}

pub(crate) fn malformed(message: impl Into<String>) -> PolicyError {
    PolicyError::Malformed(message.into())
}
