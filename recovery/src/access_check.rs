//! fsck's checks of who-may-do-what state: what the records hold must
//! still mean something. Every user's and bucket's account exists, no
//! access key is held twice or stored without its sealed secret, every
//! attached policy is built in or the account's own, and every stored
//! policy (identity or bucket) still parses.

use lsm::format::FIRST_ACCOUNT_ID;
use lsm::Index;
use policy::{Policy, PolicyKind};

pub(crate) fn access_problems(index: &Index) -> Vec<String> {
    let mut problems = Vec::new();
    let iam = &index.iam;
    let account_known = |id: &str| id == FIRST_ACCOUNT_ID || iam.account(id).is_some();
    let mut seen = std::collections::HashSet::new();
    for (holder, key) in iam.all_keys() {
        if !seen.insert(key.access_key.clone()) {
            problems.push(format!("access key {} is held twice", key.access_key));
        }
        if key.sealed_secret.is_empty() {
            problems.push(format!(
                "access key {} ({holder:?}) has no secret",
                key.access_key
            ));
        }
    }
    let accounts: Vec<String> = std::iter::once(FIRST_ACCOUNT_ID.to_string())
        .chain(iam.accounts().map(|a| a.id.clone()))
        .collect();
    for account in &accounts {
        for (name, document) in iam.policies(account) {
            if let Err(e) = Policy::parse(document, PolicyKind::Identity) {
                problems.push(format!(
                    "policy {name} of account {account} does not parse: {e}"
                ));
            }
        }
        for user in iam.users(account) {
            for attached in &user.policies {
                let known = policy::BUILTIN_NAMES.contains(&attached.as_str())
                    || iam.policy(account, attached).is_some();
                if !known {
                    problems.push(format!(
                        "user {} of account {account} has policy {attached}, which does not exist",
                        user.name
                    ));
                }
            }
        }
    }
    for bucket in index.buckets() {
        let Ok(config) = index.bucket_config(&bucket.name) else {
            continue;
        };
        if !account_known(config.owner()) {
            problems.push(format!(
                "bucket {} belongs to account {}, which does not exist",
                bucket.name,
                config.owner()
            ));
        }
        if let Some(text) = &config.policy {
            if let Err(e) = Policy::parse(text, PolicyKind::Resource) {
                problems.push(format!(
                    "the policy of bucket {} does not parse: {e}",
                    bucket.name
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use lsm::format::{AccessKey, BucketCreate, BucketSetting, IamChange, IamUpdate, User};
    use lsm::format::{Location, Record};

    fn apply(index: &mut Index, record: Record) {
        let mut space = lsm::SpaceMap::default();
        let at = Location {
            segment: 0,
            offset: 0,
            len: 0,
        };
        let _ = index.apply(1, at, &record, &mut space);
    }

    #[test]
    fn dangling_policies_owners_and_duplicate_keys_are_reported() {
        let mut index = Index::default();
        let key = AccessKey {
            access_key: "AK".into(),
            sealed_secret: vec![1],
            enabled: true,
            created_ms: 1,
        };
        for (name, policies) in [("a", vec!["readonly"]), ("b", vec!["missing"])] {
            let user = User {
                account: FIRST_ACCOUNT_ID.into(),
                name: name.into(),
                enabled: true,
                policies: policies.into_iter().map(String::from).collect(),
                keys: vec![key.clone()],
                created_ms: 1,
            };
            apply(
                &mut index,
                Record::Iam(IamUpdate {
                    at_ms: 1,
                    change: IamChange::User(user),
                }),
            );
        }
        apply(
            &mut index,
            Record::BucketCreate(BucketCreate {
                bucket: "orphan".into(),
                at_ms: 1,
                settings: vec![
                    BucketSetting::Owner("999999999999".into()),
                    BucketSetting::Policy(Some("{not json".into())),
                ],
            }),
        );
        let problems = access_problems(&index);
        assert!(
            problems.iter().any(|p| p.contains("AK is held twice")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("policy missing")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("999999999999")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("bucket orphan does not parse")),
            "{problems:?}"
        );
        assert_eq!(problems.len(), 4, "{problems:?}");
    }
}
