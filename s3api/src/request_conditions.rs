//! What a request says about itself, for the policies' conditions: the
//! values of the condition keys (source address, TLS, principal, the
//! headers and query parameters S3's keys name, tags requested), and the
//! presigned URL's lifetime, which S3 bounds.

use axum::http;
use policy::{Context, Principal};
use s3s::{S3Error, S3Result};

use crate::authz::ClientInfo;
use crate::identity::Caller;

/// The condition values a request carries, from its headers, query,
/// client and principal.
pub(crate) fn request_context(
    caller: &Caller,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    client: Option<ClientInfo>,
) -> Context {
    let mut cx = Context::new().with_request_time(lsm::now_ms() as i64 / 1000);
    if let Some(client) = client {
        cx.add("aws:SourceIp", client.addr.to_string());
        cx.add("aws:SecureTransport", client.tls.to_string());
    }
    match &caller.principal {
        Principal::Authenticated { account, user } => {
            cx.add("aws:PrincipalAccount", account.clone());
            match user {
                Some(name) => {
                    cx.add("aws:username", name.clone());
                    cx.add("aws:userid", name.clone());
                    cx.add("aws:PrincipalType", "User");
                }
                None => {
                    cx.add("aws:userid", account.clone());
                    cx.add("aws:PrincipalType", "Account");
                }
            }
        }
        Principal::Anonymous => cx.add("aws:PrincipalType", "Anonymous"),
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    for (key, name) in [
        ("aws:Referer", "referer"),
        ("aws:UserAgent", "user-agent"),
        ("s3:x-amz-acl", "x-amz-acl"),
        (
            "s3:x-amz-server-side-encryption",
            "x-amz-server-side-encryption",
        ),
        (
            "s3:x-amz-server-side-encryption-aws-kms-key-id",
            "x-amz-server-side-encryption-aws-kms-key-id",
        ),
        (
            "s3:x-amz-server-side-encryption-customer-algorithm",
            "x-amz-server-side-encryption-customer-algorithm",
        ),
        ("s3:x-amz-grant-read", "x-amz-grant-read"),
        ("s3:x-amz-grant-write", "x-amz-grant-write"),
        ("s3:x-amz-grant-read-acp", "x-amz-grant-read-acp"),
        ("s3:x-amz-grant-write-acp", "x-amz-grant-write-acp"),
        ("s3:x-amz-grant-full-control", "x-amz-grant-full-control"),
        ("s3:x-amz-copy-source", "x-amz-copy-source"),
        ("s3:x-amz-metadata-directive", "x-amz-metadata-directive"),
        ("s3:object-lock-mode", "x-amz-object-lock-mode"),
        (
            "s3:object-lock-retain-until-date",
            "x-amz-object-lock-retain-until-date",
        ),
        ("s3:object-lock-legal-hold", "x-amz-object-lock-legal-hold"),
    ] {
        if let Some(value) = header(name) {
            cx.add(key, value);
        }
    }
    if let Some(tagging) = header("x-amz-tagging") {
        for (k, v) in form_pairs(tagging) {
            cx.add("s3:RequestObjectTagKeys", k.clone());
            cx.add(&format!("s3:RequestObjectTag/{k}"), v);
        }
    }
    let query: Vec<(String, String)> = uri.query().map(form_pairs).unwrap_or_default();
    let mut presigned = false;
    for (k, v) in &query {
        match k.as_str() {
            "prefix" => cx.add("s3:prefix", v.clone()),
            "delimiter" => cx.add("s3:delimiter", v.clone()),
            "max-keys" => cx.add("s3:max-keys", v.clone()),
            "versionId" => cx.add("s3:VersionId", v.clone()),
            "X-Amz-Signature" => presigned = true,
            _ => {}
        }
    }
    match &caller.principal {
        Principal::Anonymous => {}
        _ => {
            cx.add("s3:signatureversion", "AWS4-HMAC-SHA256");
            cx.add(
                "s3:authType",
                if presigned {
                    "REST-QUERY-STRING"
                } else {
                    "REST-HEADER"
                },
            );
        }
    }
    cx
}

/// `a=b&c=d`, percent-decoded.
fn form_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Percent-decoded; a malformed escape is kept as it came (a condition
/// then simply does not match it).
pub(crate) fn percent_decode(s: &str) -> String {
    crate::object_config::urlencoding_decode(s).unwrap_or_else(|| s.to_string())
}

/// A presigned URL's lifetime must be 1 s to 7 days, as S3 requires.
pub(crate) fn check_presigned_expiry(uri: &http::Uri) -> S3Result<()> {
    let Some(query) = uri.query() else {
        return Ok(());
    };
    for (k, v) in form_pairs(query) {
        if k == "X-Amz-Expires" {
            match v.parse::<u64>() {
                Ok(1..=604_800) => {}
                _ => {
                    let mut e = S3Error::with_message(
                        s3s::S3ErrorCode::Custom("AuthorizationQueryParametersError".into()),
                        "X-Amz-Expires must be between 1 and 604800 seconds",
                    );
                    e.set_status_code(http::StatusCode::FORBIDDEN);
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}
