//! Who signed a request: the first account's root (the server's own key
//! pair) or a key stored in the log (another account's root, or a user's),
//! whose secret is opened with the sealer. Only enabled keys of enabled
//! users sign anything; a key that does not sign is as unknown as one that
//! never existed, so an error never tells them apart.

use std::sync::{Arc, OnceLock};

use lsm::format::FIRST_ACCOUNT_ID;
use lsm::KeyHolder;
use s3s::auth::{S3Auth, SecretKey};
use s3s::{s3_error, S3Result};

use crate::secrets::Sealer;

/// A signed request's principal and, for a user, the policies attached.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub principal: policy::Principal,
    pub policies: Vec<String>,
}

pub struct Keyring {
    store: Arc<OnceLock<lsm::Store>>,
    root_access_key: String,
    root_secret: String,
    sealer: Sealer,
}

impl Keyring {
    pub fn new(
        store: Arc<OnceLock<lsm::Store>>,
        root_access_key: String,
        root_secret: String,
        previous_root_secret: Option<&str>,
    ) -> Keyring {
        let sealer = Sealer::new(&root_secret, previous_root_secret);
        Keyring {
            store,
            root_access_key,
            root_secret,
            sealer,
        }
    }

    pub(crate) fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// The principal holding `access_key`, if the key may sign requests
    /// now, and where its secret is: None for the server's own pair (whose
    /// secret is in memory), else the sealed secret.
    fn holder(&self, access_key: &str) -> Option<(Caller, Option<Vec<u8>>)> {
        if access_key == self.root_access_key {
            let caller = Caller {
                principal: policy::Principal::root(FIRST_ACCOUNT_ID),
                policies: Vec::new(),
            };
            return Some((caller, None));
        }
        self.store.get()?.with_iam(|iam| {
            let (holder, key) = iam.key(access_key)?;
            if !key.enabled {
                return None;
            }
            let caller = match holder {
                KeyHolder::Root { account } => Caller {
                    principal: policy::Principal::root(account),
                    policies: Vec::new(),
                },
                KeyHolder::User { account, name } => {
                    let user = iam.user(&account, &name)?;
                    if !user.enabled {
                        return None;
                    }
                    Caller {
                        principal: policy::Principal::user(account, name),
                        policies: user.policies.clone(),
                    }
                }
            };
            Some((caller, Some(key.sealed_secret)))
        })
    }

    /// Who holds `access_key`, for a request whose signature has been
    /// checked already (the secret is not opened again).
    pub(crate) fn caller(&self, access_key: &str) -> Option<Caller> {
        self.holder(access_key).map(|(caller, _)| caller)
    }

    /// Whether `access_key` may sign requests now (its holder and the key
    /// enabled), without opening its secret.
    pub fn may_sign(&self, access_key: &str) -> bool {
        self.holder(access_key).is_some()
    }

    /// Whether `secret` is the secret of `access_key` and the key may sign
    /// requests now: the console's login. The comparison takes the same
    /// time wherever the strings differ.
    pub fn check_secret(&self, access_key: &str, secret: &str) -> bool {
        let Some(known) = self.secret(access_key) else {
            return false;
        };
        let (a, b) = (known.as_bytes(), secret.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// The secret of `access_key`, if the key may sign requests now (the
    /// console presigns share links with it).
    pub fn secret(&self, access_key: &str) -> Option<String> {
        match self.holder(access_key)?.1 {
            None => Some(self.root_secret.clone()),
            Some(sealed) => match self.sealer.open(&sealed) {
                Ok(opened) => Some(opened.secret),
                Err(e) => {
                    tracing::error!(access_key, error = %e, "a stored secret does not open");
                    None
                }
            },
        }
    }

    /// Seals again, under the current root secret, every stored secret
    /// sealed under the previous one, so that none is stranded when the
    /// previous one is no longer given. Returns how many were re-sealed.
    pub async fn reseal_stale(&self, store: &lsm::Store) -> lsm::Result<usize> {
        let mut changes = Vec::new();
        store.with_iam(|iam| {
            for account in iam.accounts() {
                let mut account = account.clone();
                if self.reseal_keys(&mut account.root_keys) {
                    changes.push(lsm::format::IamChange::Account(account));
                }
            }
            for account in iam
                .accounts()
                .map(|a| a.id.clone())
                .chain([FIRST_ACCOUNT_ID.into()])
            {
                for user in iam.users(&account) {
                    let mut user = user.clone();
                    if self.reseal_keys(&mut user.keys) {
                        changes.push(lsm::format::IamChange::User(user));
                    }
                }
            }
        });
        let count = changes.len();
        for change in changes {
            store.change_iam(change).await?;
        }
        Ok(count)
    }

    fn reseal_keys(&self, keys: &mut [lsm::format::AccessKey]) -> bool {
        let mut changed = false;
        for key in keys {
            match self.sealer.open(&key.sealed_secret) {
                Ok(opened) if opened.stale => {
                    if let Ok(sealed) = self.sealer.seal(&opened.secret) {
                        key.sealed_secret = sealed;
                        changed = true;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(access_key = %key.access_key, error = %e, "a stored secret does not open");
                }
            }
        }
        changed
    }
}

/// s3s's view of the keyring: a secret for each access key that may sign.
pub(crate) struct KeyringAuth(pub Arc<Keyring>);

#[async_trait::async_trait]
impl S3Auth for KeyringAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.0.secret(access_key) {
            Some(secret) => Ok(SecretKey::from(secret)),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
        }
    }
}
