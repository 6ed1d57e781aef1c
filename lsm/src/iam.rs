//! Accounts, users, their keys and custom policies, as the log holds them:
//! changed only by `Iam` records (through `Index::apply`) and checkpointed
//! with the index, so they share its durability and its crash tests. What
//! the policies mean is the server's business; this keeps them exact.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::format::{AccessKey, Account, IamChange, User};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IamState {
    accounts: BTreeMap<String, Account>,
    /// By (account, user name).
    users: BTreeMap<(String, String), User>,
    /// Custom identity policies by (account, name): their documents.
    policies: BTreeMap<(String, String), String>,
    /// Access key -> holder; derived, rebuilt after a checkpoint loads.
    #[serde(skip)]
    keys: HashMap<String, KeyHolder>,
}

/// Whose an access key is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyHolder {
    /// An account's root (not the first account's: its keys are the
    /// server's environment).
    Root {
        account: String,
    },
    User {
        account: String,
        name: String,
    },
}

impl IamState {
    pub(crate) fn apply(&mut self, change: &IamChange) {
        match change {
            IamChange::Account(account) => {
                if let Some(old) = self.accounts.insert(account.id.clone(), account.clone()) {
                    self.forget_keys(&old.root_keys);
                }
                let holder = KeyHolder::Root {
                    account: account.id.clone(),
                };
                self.remember_keys(&account.root_keys, &holder);
            }
            IamChange::User(user) => {
                let id = (user.account.clone(), user.name.clone());
                if let Some(old) = self.users.insert(id, user.clone()) {
                    self.forget_keys(&old.keys);
                }
                let holder = KeyHolder::User {
                    account: user.account.clone(),
                    name: user.name.clone(),
                };
                self.remember_keys(&user.keys, &holder);
            }
            IamChange::UserRemove { account, name } => {
                if let Some(old) = self.users.remove(&(account.clone(), name.clone())) {
                    self.forget_keys(&old.keys);
                }
            }
            IamChange::Policy {
                account,
                name,
                document,
            } => {
                self.policies
                    .insert((account.clone(), name.clone()), document.clone());
            }
            IamChange::PolicyRemove { account, name } => {
                self.policies.remove(&(account.clone(), name.clone()));
            }
        }
    }

    fn remember_keys(&mut self, keys: &[AccessKey], holder: &KeyHolder) {
        for key in keys {
            self.keys.insert(key.access_key.clone(), holder.clone());
        }
    }

    fn forget_keys(&mut self, keys: &[AccessKey]) {
        for key in keys {
            self.keys.remove(&key.access_key);
        }
    }

    /// Rebuilds the key lookup (not checkpointed).
    pub(crate) fn reindex(&mut self) {
        self.keys.clear();
        let mut holders = Vec::new();
        for account in self.accounts.values() {
            let holder = KeyHolder::Root {
                account: account.id.clone(),
            };
            holders.push((account.root_keys.clone(), holder));
        }
        for user in self.users.values() {
            let holder = KeyHolder::User {
                account: user.account.clone(),
                name: user.name.clone(),
            };
            holders.push((user.keys.clone(), holder));
        }
        for (keys, holder) in holders {
            self.remember_keys(&keys, &holder);
        }
    }

    /// The holder of an access key and the key itself.
    pub fn key(&self, access_key: &str) -> Option<(KeyHolder, AccessKey)> {
        let holder = self.keys.get(access_key)?.clone();
        let keys = match &holder {
            KeyHolder::Root { account } => &self.accounts.get(account)?.root_keys,
            KeyHolder::User { account, name } => {
                &self.users.get(&(account.clone(), name.clone()))?.keys
            }
        };
        let key = keys.iter().find(|k| k.access_key == access_key)?.clone();
        Some((holder, key))
    }

    pub fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.get(id)
    }

    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values()
    }

    pub fn user(&self, account: &str, name: &str) -> Option<&User> {
        self.users.get(&(account.to_string(), name.to_string()))
    }

    pub fn users(&self, account: &str) -> impl Iterator<Item = &User> {
        let account = account.to_string();
        self.users
            .range((account.clone(), String::new())..)
            .take_while(move |((a, _), _)| *a == account)
            .map(|(_, u)| u)
    }

    pub fn policy(&self, account: &str, name: &str) -> Option<&str> {
        self.policies
            .get(&(account.to_string(), name.to_string()))
            .map(String::as_str)
    }

    pub fn policies(&self, account: &str) -> impl Iterator<Item = (&str, &str)> {
        let account = account.to_string();
        self.policies
            .range((account.clone(), String::new())..)
            .take_while(move |((a, _), _)| *a == account)
            .map(|((_, name), doc)| (name.as_str(), doc.as_str()))
    }

    /// Every access key on the device, with its holder: to re-seal
    /// secrets when the outside key rotates.
    pub fn all_keys(&self) -> Vec<(KeyHolder, AccessKey)> {
        let mut out = Vec::new();
        for account in self.accounts.values() {
            for key in &account.root_keys {
                let holder = KeyHolder::Root {
                    account: account.id.clone(),
                };
                out.push((holder, key.clone()));
            }
        }
        for user in self.users.values() {
            for key in &user.keys {
                let holder = KeyHolder::User {
                    account: user.account.clone(),
                    name: user.name.clone(),
                };
                out.push((holder, key.clone()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> AccessKey {
        AccessKey {
            access_key: id.into(),
            sealed_secret: vec![1, 2, 3],
            enabled: true,
            created_ms: 1,
        }
    }

    fn user(name: &str, keys: &[&str]) -> User {
        User {
            account: "111111111111".into(),
            name: name.into(),
            enabled: true,
            policies: vec!["readonly".into()],
            keys: keys.iter().map(|k| key(k)).collect(),
            created_ms: 1,
        }
    }

    #[test]
    fn keys_follow_their_users_and_survive_a_reindex() {
        let mut iam = IamState::default();
        iam.apply(&IamChange::User(user("alice", &["AK1", "AK2"])));
        iam.apply(&IamChange::User(user("bob", &["AK3"])));
        // Replacing alice drops the key she no longer has.
        iam.apply(&IamChange::User(user("alice", &["AK2"])));
        assert!(iam.key("AK1").is_none());
        let (holder, _) = iam.key("AK2").expect("alice's key");
        assert_eq!(
            holder,
            KeyHolder::User {
                account: "111111111111".into(),
                name: "alice".into()
            }
        );
        iam.apply(&IamChange::UserRemove {
            account: "111111111111".into(),
            name: "bob".into(),
        });
        assert!(iam.key("AK3").is_none());
        let mut restored: IamState =
            bincode::deserialize(&bincode::serialize(&iam).unwrap()).unwrap();
        assert!(restored.key("AK2").is_none(), "the lookup is not stored");
        restored.reindex();
        assert_eq!(restored, iam);
        assert_eq!(restored.users("111111111111").count(), 1);
        assert_eq!(restored.users("222222222222").count(), 0);
    }
}
