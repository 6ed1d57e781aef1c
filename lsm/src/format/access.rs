//! Format 7's access-control state, as records carry it: accounts, users,
//! their keys and policies (one `Iam` record kind), and a bucket's owner,
//! policy, ACL, CORS rules, object ownership and public access block (new
//! `BucketSetting` variants), and an object version's owner and ACL (a new
//! `MetaItem`). The server gives meaning to all of it; the engine only
//! keeps it durable and in log order.

use serde::{Deserialize, Serialize};

/// The account whose root keys come from the server's environment. It has
/// no record: every device has it, and buckets made before format 7 are
/// its own.
pub const FIRST_ACCOUNT_ID: &str = "000000000000";

/// A tenant: its own root keys, users, policies and buckets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Twelve digits, as AWS account ids are.
    pub id: String,
    pub name: String,
    pub created_ms: u64,
    pub root_keys: Vec<AccessKey>,
}

/// An access key and its secret, sealed by the server under a key that
/// does not live on the device (see DESIGN.md, "Secrets"). The engine
/// never sees a secret in the clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKey {
    pub access_key: String,
    #[serde(with = "serde_bytes")]
    pub sealed_secret: Vec<u8>,
    pub enabled: bool,
    pub created_ms: u64,
}

/// A user inside an account, replaced whole by each change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub account: String,
    pub name: String,
    pub enabled: bool,
    /// Names of the policies attached: built-in or the account's own.
    pub policies: Vec<String>,
    pub keys: Vec<AccessKey>,
    pub created_ms: u64,
}

/// One change to accounts, users or policies. Puts replace the whole
/// entry, so replay needs no earlier state to apply one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IamChange {
    Account(Account),
    User(User),
    UserRemove {
        account: String,
        name: String,
    },
    /// A custom identity policy of an account (IAM JSON, as given).
    Policy {
        account: String,
        name: String,
        document: String,
    },
    PolicyRemove {
        account: String,
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IamUpdate {
    pub at_ms: u64,
    pub change: IamChange,
}

/// Who an ACL grant is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Grantee {
    /// An account, by id (which is also its canonical user id).
    Account(String),
    /// Everyone, signed or not.
    AllUsers,
    /// Every signed request, of any account.
    AuthenticatedUsers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Permission {
    FullControl,
    Read,
    Write,
    ReadAcp,
    WriteAcp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub grantee: Grantee,
    pub permission: Permission,
}

/// An object version's owner and grants, kept only when they differ from
/// the default (owned by the bucket's owner, private).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectAcl {
    pub owner: String,
    pub grants: Vec<Grant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectOwnership {
    BucketOwnerEnforced,
    BucketOwnerPreferred,
    ObjectWriter,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAccessBlock {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    pub id: Option<String>,
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age_s: Option<u32>,
}
