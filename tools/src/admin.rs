//! `strata admin`: accounts, users, keys and policies of a running server,
//! through its admin API (`/strata/admin/v1/`), signed with SigV4 under the
//! key pair from the same environment as `serve`. The server authorises
//! each call like any other request.

use clap::Subcommand;
use console::sigv4;
use serde_json::{json, Value};

#[derive(clap::Args)]
pub struct AdminArgs {
    /// The server's S3 endpoint.
    #[arg(long, default_value = "http://127.0.0.1:9000", env = "STRATA_ENDPOINT")]
    endpoint: String,
    /// The region the server answers for (part of the signature).
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Print answers as one line of JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    what: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Tenants: another account with its own root keys and buckets.
    #[command(subcommand)]
    Account(AccountCommand),
    #[command(subcommand)]
    User(UserCommand),
    /// A user's access keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Identity policies: built-in (readonly, readwrite, writeonly,
    /// consoleAdmin) or the account's own IAM JSON documents.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Prints the account's id and its root access key and secret.
    Add { name: String },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Prints the new user's access key and secret.
    Add {
        name: String,
        #[arg(long = "policy")]
        policies: Vec<String>,
    },
    List,
    Disable {
        name: String,
    },
    Enable {
        name: String,
    },
    Remove {
        name: String,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Another access key for a user (prints it and its secret).
    Add {
        user: String,
    },
    /// A new secret for an existing access key (prints it).
    Rotate {
        user: String,
        access_key: String,
    },
    Remove {
        user: String,
        access_key: String,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Stores the IAM JSON policy in FILE under NAME.
    Add {
        name: String,
        file: std::path::PathBuf,
    },
    Remove {
        name: String,
    },
    Attach {
        user: String,
        policy: String,
    },
    Detach {
        user: String,
        policy: String,
    },
    List,
}

pub fn run(args: AdminArgs) -> Result<(), String> {
    let (access_key, secret_key) = crate::config::credentials_from_env().ok_or(
        "set STRATA_ACCESS_KEY and STRATA_SECRET_KEY (or MINIO_ROOT_USER/MINIO_ROOT_PASSWORD)",
    )?;
    let client = Client {
        endpoint: args.endpoint.trim_end_matches('/').to_string(),
        region: args.region,
        access_key,
        secret_key,
    };
    let (method, op, body) = match args.what {
        AdminCommand::Account(AccountCommand::Add { name }) => {
            ("POST", "account", json!({ "name": name }))
        }
        AdminCommand::User(c) => match c {
            UserCommand::Add { name, policies } => (
                "POST",
                "user",
                json!({ "name": name, "policies": policies }),
            ),
            UserCommand::List => ("GET", "users", Value::Null),
            UserCommand::Disable { name } => ("POST", "user/disable", json!({ "name": name })),
            UserCommand::Enable { name } => ("POST", "user/enable", json!({ "name": name })),
            UserCommand::Remove { name } => ("POST", "user/remove", json!({ "name": name })),
        },
        AdminCommand::Key(c) => match c {
            KeyCommand::Add { user } => ("POST", "key/add", json!({ "user": user })),
            KeyCommand::Rotate { user, access_key } => (
                "POST",
                "key/rotate",
                json!({ "user": user, "access_key": access_key }),
            ),
            KeyCommand::Remove { user, access_key } => (
                "POST",
                "key/remove",
                json!({ "user": user, "access_key": access_key }),
            ),
        },
        AdminCommand::Policy(c) => match c {
            PolicyCommand::Add { name, file } => {
                let document = std::fs::read_to_string(&file)
                    .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
                (
                    "POST",
                    "policy",
                    json!({ "name": name, "document": document }),
                )
            }
            PolicyCommand::Remove { name } => ("POST", "policy/remove", json!({ "name": name })),
            PolicyCommand::Attach { user, policy } => (
                "POST",
                "policy/attach",
                json!({ "user": user, "policy": policy }),
            ),
            PolicyCommand::Detach { user, policy } => (
                "POST",
                "policy/detach",
                json!({ "user": user, "policy": policy }),
            ),
            PolicyCommand::List => ("GET", "policies", Value::Null),
        },
    };
    let answer = client.call(method, op, &body)?;
    print_answer(&answer, args.json);
    Ok(())
}

fn print_answer(answer: &Value, as_json: bool) {
    if as_json {
        if !answer.is_null() {
            println!("{answer}");
        }
        return;
    }
    match answer {
        Value::Object(fields) => {
            for (k, v) in fields {
                println!(
                    "{k}: {}",
                    v.as_str().map_or_else(|| v.to_string(), str::to_string)
                );
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::String(s) => println!("{s}"),
                    other => println!("{other}"),
                }
            }
        }
        Value::Null => {}
        other => println!("{other}"),
    }
}

struct Client {
    endpoint: String,
    region: String,
    access_key: String,
    secret_key: String,
}

impl Client {
    fn call(&self, method: &str, op: &str, body: &Value) -> Result<Value, String> {
        let path = format!("/strata/admin/v1/{op}");
        let payload = match body {
            Value::Null => Vec::new(),
            v => v.to_string().into_bytes(),
        };
        let host = self
            .endpoint
            .split_once("://")
            .map_or(self.endpoint.as_str(), |(_, rest)| rest)
            .to_string();
        let now = time::OffsetDateTime::now_utc();
        let headers = sign(&Signing {
            method,
            host: &host,
            path: &path,
            payload: &payload,
            region: &self.region,
            access_key: &self.access_key,
            secret_key: &self.secret_key,
            now,
        });
        let mut request = ureq::request(method, &format!("{}{path}", self.endpoint));
        for (name, value) in &headers {
            request = request.set(name, value);
        }
        let response = match request.send_bytes(&payload) {
            Ok(r) => r,
            Err(ureq::Error::Status(status, r)) => {
                let text = r.into_string().unwrap_or_default();
                return Err(format!(
                    "the server refused it ({status}): {}",
                    error_message(&text)
                ));
            }
            Err(e) => return Err(format!("cannot reach {}: {e}", self.endpoint)),
        };
        let text = response
            .into_string()
            .map_err(|e| format!("cannot read the answer: {e}"))?;
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| format!("the answer is not JSON: {e}"))
    }
}

/// The Code and Message of an S3 error document, without an XML parser.
fn error_message(xml: &str) -> String {
    let field = |name: &str| {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        xml.split_once(&open)
            .and_then(|(_, rest)| rest.split_once(&close))
            .map(|(value, _)| value.to_string())
    };
    match (field("Code"), field("Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code,
        _ => xml.chars().take(200).collect(),
    }
}

struct Signing<'a> {
    method: &'a str,
    host: &'a str,
    path: &'a str,
    payload: &'a [u8],
    region: &'a str,
    access_key: &'a str,
    secret_key: &'a str,
    now: time::OffsetDateTime,
}

/// The headers of a SigV4-signed request (AWS's "Signature Version 4
/// signing process": canonical request, string to sign, derived key).
fn sign(s: &Signing<'_>) -> Vec<(String, String)> {
    let amz_date = sigv4::amz_date(s.now);
    let date = &amz_date[..8.min(amz_date.len())];
    let payload_hash = sigv4::sha256_hex(s.payload);
    let headers = [
        ("host", s.host.to_string()),
        ("x-amz-content-sha256", payload_hash.clone()),
        ("x-amz-date", amz_date.clone()),
    ];
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = "host;x-amz-content-sha256;x-amz-date";
    let canonical = format!(
        "{}\n{}\n\n{canonical_headers}\n{signed_headers}\n{payload_hash}",
        s.method, s.path
    );
    let scope = format!("{date}/{}/s3/aws4_request", s.region);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sigv4::sha256_hex(canonical.as_bytes())
    );
    let key = sigv4::signing_key(s.secret_key, date, s.region);
    let signature = hex::encode(sigv4::hmac(&key, to_sign.as_bytes()));
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        s.access_key
    );
    let mut out: Vec<(String, String)> = headers
        .into_iter()
        .filter(|(k, _)| *k != "host")
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    out.push(("authorization".into(), authorization));
    if !s.payload.is_empty() {
        out.push(("content-type".into(), "application/json".into()));
    }
    out
}
