//! The admin API (`/strata/admin/v1/...`), which `strata admin` and the
//! console call: accounts, users, keys and policies. Requests are signed
//! with SigV4 like any S3 request (s3s verifies them) and each is
//! authorised by `authz` as its MinIO-named admin action on the caller's
//! own account, so an account's root and a user whose policy grants the
//! action may use it. A secret key is in the answer that creates it and
//! nowhere else.

use std::sync::Arc;

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use lsm::format::{AccessKey, Account, IamChange, User, FIRST_ACCOUNT_ID};
use policy::{Policy, PolicyKind};
use s3s::route::S3Route;
use s3s::{s3_error, Body, S3Request, S3Response, S3Result};
use serde::{Deserialize, Serialize};

use crate::authz::{caller_of, signer, Access, Ask};
use crate::errors::to_s3;
use crate::identity::Caller;
use crate::secrets::{new_access_key, new_secret_key};

pub const ADMIN_PREFIX: &str = "/strata/admin/v1/";
const MAX_ADMIN_BODY_BYTES: usize = 64 << 10;

pub(crate) struct AdminRoute {
    pub access: Arc<Access>,
}

#[derive(Deserialize, Default)]
struct AdminInput {
    #[serde(default)]
    name: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    policies: Vec<String>,
    #[serde(default)]
    policy: String,
    #[serde(default)]
    document: String,
    #[serde(default)]
    access_key: String,
}

#[derive(Serialize)]
struct NewKey {
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<String>,
    access_key: String,
    secret_key: String,
}

#[derive(Serialize)]
struct UserView {
    name: String,
    enabled: bool,
    policies: Vec<String>,
    access_keys: Vec<KeyView>,
}

#[derive(Serialize)]
struct KeyView {
    access_key: String,
    enabled: bool,
}

fn json<T: Serialize>(value: &T) -> S3Result<S3Response<Body>> {
    let text = serde_json::to_vec(value).map_err(|e| s3_error!(InternalError, "{e}"))?;
    let mut response = S3Response::new(Body::from(bytes::Bytes::from(text)));
    response.headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

fn no_content() -> S3Result<S3Response<Body>> {
    Ok(S3Response::with_status(
        Body::empty(),
        StatusCode::NO_CONTENT,
    ))
}

/// A name users and policies may have: what IAM allows.
fn check_name(kind: &str, name: &str) -> S3Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    match ok {
        true => Ok(()),
        false => Err(s3_error!(
            InvalidArgument,
            "a {kind} name is 1 to 64 characters of letters, digits and +=,.@_-"
        )),
    }
}

impl AdminRoute {
    fn store(&self) -> S3Result<lsm::Store> {
        self.access.store()
    }

    fn allow(&self, caller: &Caller, action: &str) -> S3Result<()> {
        let context = policy::Context::new();
        self.access.authorize(&Ask {
            caller,
            action,
            bucket: None,
            key: None,
            version: None,
            context: &context,
        })
    }

    fn new_key(&self) -> S3Result<(String, AccessKey)> {
        let internal = |e: crate::secrets::SealError| s3_error!(InternalError, "{e}");
        let secret = new_secret_key().map_err(internal)?;
        let key = AccessKey {
            access_key: new_access_key().map_err(internal)?,
            sealed_secret: self
                .access
                .keyring()
                .sealer()
                .seal(&secret)
                .map_err(internal)?,
            enabled: true,
            created_ms: lsm::now_ms(),
        };
        Ok((secret, key))
    }

    fn user(&self, store: &lsm::Store, account: &str, name: &str) -> S3Result<User> {
        store
            .with_iam(|iam| iam.user(account, name).cloned())
            .ok_or_else(|| s3_error!(NoSuchKey, "no user {name}"))
    }

    fn policy_exists(&self, store: &lsm::Store, account: &str, name: &str) -> bool {
        policy::builtin(name).is_some() || store.with_iam(|iam| iam.policy(account, name).is_some())
    }

    async fn put_user(&self, store: &lsm::Store, user: User) -> S3Result<()> {
        store.change_iam(IamChange::User(user)).await.map_err(to_s3)
    }

    async fn run(
        &self,
        caller: &Caller,
        method: &Method,
        op: &str,
        input: AdminInput,
    ) -> S3Result<S3Response<Body>> {
        let store = self.store()?;
        let account = crate::authz::account_of(caller).to_string();
        match (method.as_str(), op) {
            ("POST", "account") => {
                self.allow(caller, "admin:CreateAccount")?;
                check_name("account", &input.name)?;
                if store.with_iam(|iam| iam.accounts().any(|a| a.name == input.name)) {
                    return Err(s3_error!(InvalidArgument, "the account exists"));
                }
                let id = loop {
                    let mut raw = [0u8; 8];
                    getrandom::getrandom(&mut raw).map_err(|e| s3_error!(InternalError, "{e}"))?;
                    let id = format!("{:012}", u64::from_le_bytes(raw) % 1_000_000_000_000);
                    if id != FIRST_ACCOUNT_ID && store.with_iam(|iam| iam.account(&id).is_none()) {
                        break id;
                    }
                };
                let (secret, key) = self.new_key()?;
                let access_key = key.access_key.clone();
                store
                    .change_iam(IamChange::Account(Account {
                        id: id.clone(),
                        name: input.name,
                        created_ms: lsm::now_ms(),
                        root_keys: vec![key],
                    }))
                    .await
                    .map_err(to_s3)?;
                json(&NewKey {
                    account_id: Some(id),
                    access_key,
                    secret_key: secret,
                })
            }
            ("POST", "user") => {
                self.allow(caller, "admin:CreateUser")?;
                check_name("user", &input.name)?;
                if store.with_iam(|iam| iam.user(&account, &input.name).is_some()) {
                    return Err(s3_error!(InvalidArgument, "the user exists"));
                }
                for p in &input.policies {
                    if !self.policy_exists(&store, &account, p) {
                        return Err(s3_error!(InvalidArgument, "no policy {p}"));
                    }
                }
                let (secret, key) = self.new_key()?;
                let access_key = key.access_key.clone();
                let user = User {
                    account: account.clone(),
                    name: input.name,
                    enabled: true,
                    policies: input.policies,
                    keys: vec![key],
                    created_ms: lsm::now_ms(),
                };
                self.put_user(&store, user).await?;
                json(&NewKey {
                    account_id: None,
                    access_key,
                    secret_key: secret,
                })
            }
            ("GET", "users") => {
                self.allow(caller, "admin:ListUsers")?;
                let users: Vec<UserView> = store.with_iam(|iam| {
                    iam.users(&account)
                        .map(|u| UserView {
                            name: u.name.clone(),
                            enabled: u.enabled,
                            policies: u.policies.clone(),
                            access_keys: u
                                .keys
                                .iter()
                                .map(|k| KeyView {
                                    access_key: k.access_key.clone(),
                                    enabled: k.enabled,
                                })
                                .collect(),
                        })
                        .collect()
                });
                json(&users)
            }
            ("POST", "user/enable" | "user/disable") => {
                let enable = op == "user/enable";
                self.allow(
                    caller,
                    if enable {
                        "admin:EnableUser"
                    } else {
                        "admin:DisableUser"
                    },
                )?;
                let mut user = self.user(&store, &account, &input.name)?;
                user.enabled = enable;
                self.put_user(&store, user).await?;
                no_content()
            }
            ("POST", "user/remove") => {
                self.allow(caller, "admin:DeleteUser")?;
                self.user(&store, &account, &input.name)?;
                store
                    .change_iam(IamChange::UserRemove {
                        account,
                        name: input.name,
                    })
                    .await
                    .map_err(to_s3)?;
                no_content()
            }
            ("POST", "key/add") => {
                self.allow(caller, "admin:CreateServiceAccount")?;
                let mut user = self.user(&store, &account, &input.user)?;
                let (secret, key) = self.new_key()?;
                let access_key = key.access_key.clone();
                user.keys.push(key);
                self.put_user(&store, user).await?;
                json(&NewKey {
                    account_id: None,
                    access_key,
                    secret_key: secret,
                })
            }
            ("POST", "key/rotate") => {
                self.allow(caller, "admin:CreateServiceAccount")?;
                let mut user = self.user(&store, &account, &input.user)?;
                let (secret, fresh) = self.new_key()?;
                let key = user
                    .keys
                    .iter_mut()
                    .find(|k| k.access_key == input.access_key)
                    .ok_or_else(|| s3_error!(InvalidArgument, "no such access key"))?;
                key.sealed_secret = fresh.sealed_secret;
                self.put_user(&store, user).await?;
                json(&NewKey {
                    account_id: None,
                    access_key: input.access_key,
                    secret_key: secret,
                })
            }
            ("POST", "key/remove") => {
                self.allow(caller, "admin:RemoveServiceAccount")?;
                let mut user = self.user(&store, &account, &input.user)?;
                let before = user.keys.len();
                user.keys.retain(|k| k.access_key != input.access_key);
                if user.keys.len() == before {
                    return Err(s3_error!(InvalidArgument, "no such access key"));
                }
                self.put_user(&store, user).await?;
                no_content()
            }
            ("POST", "policy") => {
                self.allow(caller, "admin:CreatePolicy")?;
                check_name("policy", &input.name)?;
                if policy::builtin(&input.name).is_some() {
                    return Err(s3_error!(
                        InvalidArgument,
                        "a built-in policy has that name"
                    ));
                }
                Policy::parse(&input.document, PolicyKind::Identity)
                    .map_err(|e| s3_error!(MalformedPolicy, "{e}"))?;
                store
                    .change_iam(IamChange::Policy {
                        account,
                        name: input.name,
                        document: input.document,
                    })
                    .await
                    .map_err(to_s3)?;
                no_content()
            }
            ("GET", "policies") => {
                self.allow(caller, "admin:GetPolicy")?;
                let mut names: Vec<String> = policy::BUILTIN_NAMES
                    .iter()
                    .map(|n| n.to_string())
                    .collect();
                store.with_iam(|iam| {
                    names.extend(iam.policies(&account).map(|(n, _)| n.to_string()))
                });
                json(&names)
            }
            ("POST", "compaction/pause" | "compaction/resume") => {
                self.allow(caller, "admin:PauseCompaction")?;
                store.pause_compaction(op == "compaction/pause");
                no_content()
            }
            ("POST", "policy/remove") => {
                self.allow(caller, "admin:DeletePolicy")?;
                store
                    .change_iam(IamChange::PolicyRemove {
                        account,
                        name: input.name,
                    })
                    .await
                    .map_err(to_s3)?;
                no_content()
            }
            ("POST", "policy/attach" | "policy/detach") => {
                self.allow(caller, "admin:AttachUserOrGroupPolicy")?;
                let mut user = self.user(&store, &account, &input.user)?;
                if op == "policy/attach" {
                    if !self.policy_exists(&store, &account, &input.policy) {
                        return Err(s3_error!(InvalidArgument, "no policy {}", input.policy));
                    }
                    if !user.policies.contains(&input.policy) {
                        user.policies.push(input.policy);
                    }
                } else {
                    user.policies.retain(|p| *p != input.policy);
                }
                self.put_user(&store, user).await?;
                no_content()
            }
            _ => Err(s3_error!(
                NotImplemented,
                "no admin operation {method} {op}"
            )),
        }
    }
}

#[async_trait::async_trait]
impl S3Route for AdminRoute {
    fn is_match(
        &self,
        _method: &Method,
        uri: &Uri,
        _headers: &HeaderMap,
        _extensions: &mut axum::http::Extensions,
    ) -> bool {
        uri.path().starts_with(ADMIN_PREFIX)
    }

    async fn check_access(&self, req: &mut S3Request<Body>) -> S3Result<()> {
        let Some(access_key) = signer(req.credentials.as_ref(), &req.extensions) else {
            return Err(s3_error!(AccessDenied, "Signature is required"));
        };
        let caller = self
            .access
            .keyring()
            .caller(&access_key)
            .ok_or_else(|| s3_error!(AccessDenied, "Access Denied"))?;
        req.extensions.insert(caller);
        Ok(())
    }

    async fn call(&self, mut req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let caller = caller_of(&req.extensions);
        let op = req
            .uri
            .path()
            .strip_prefix(ADMIN_PREFIX)
            .unwrap_or("")
            .trim_end_matches('/')
            .to_string();
        let body = req
            .input
            .store_all_limited(MAX_ADMIN_BODY_BYTES)
            .await
            .map_err(|e| s3_error!(InvalidRequest, "{e}"))?;
        let input: AdminInput = match body.is_empty() {
            true => AdminInput::default(),
            false => serde_json::from_slice(&body)
                .map_err(|e| s3_error!(InvalidRequest, "the body is not an admin request: {e}"))?,
        };
        self.run(&caller, &req.method, &op, input).await
    }
}
