//! CORS as S3 answers it: a preflight OPTIONS is answered from the
//! bucket's rules (200 with the allowed origin, methods and headers, or
//! 403), and an ordinary request that carries an Origin gets the CORS
//! headers of the first rule that matches. Requests without an Origin are
//! untouched. Path-style buckets only (`/bucket/key`), as Strata serves.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lsm::format::CorsRule;

use crate::AppState;

fn bucket_of(path: &str) -> Option<&str> {
    let name = path.trim_start_matches('/').split('/').next()?;
    (!name.is_empty()).then_some(name)
}

/// `*` anywhere in a rule's origin or header matches any run of characters.
fn wildcard(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern.eq_ignore_ascii_case(text),
        Some((head, tail)) => {
            text.len() >= head.len() + tail.len()
                && text[..head.len()].eq_ignore_ascii_case(head)
                && text[text.len() - tail.len()..].eq_ignore_ascii_case(tail)
        }
    }
}

fn matching<'a>(
    rules: &'a [CorsRule],
    origin: &str,
    method: &str,
    headers: &[&str],
) -> Option<&'a CorsRule> {
    rules.iter().find(|r| {
        r.allowed_origins.iter().any(|o| wildcard(o, origin))
            && r.allowed_methods.iter().any(|m| m == method)
            && headers
                .iter()
                .all(|h| r.allowed_headers.iter().any(|a| wildcard(a, h)))
    })
}

fn rules_of(state: &AppState, path: &str) -> Option<std::sync::Arc<Vec<CorsRule>>> {
    let store = state.store.get()?;
    store.bucket_config(bucket_of(path)?).ok()?.cors
}

fn put_headers(out: &mut HeaderMap, rule: &CorsRule, origin: &str, preflight: Option<&str>) {
    let any_origin = rule.allowed_origins.iter().any(|o| o == "*");
    let allow_origin = if any_origin { "*" } else { origin };
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            out.insert(name, v);
        }
    };
    set("access-control-allow-origin", allow_origin);
    set(
        "access-control-allow-methods",
        &rule.allowed_methods.join(", "),
    );
    if !any_origin {
        set("access-control-allow-credentials", "true");
        set(
            "vary",
            "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
        );
    }
    if let Some(requested) = preflight {
        if !requested.is_empty() {
            set("access-control-allow-headers", requested);
        }
        if let Some(age) = rule.max_age_s {
            set("access-control-max-age", &age.to_string());
        }
    }
    if !rule.expose_headers.is_empty() {
        set(
            "access-control-expose-headers",
            &rule.expose_headers.join(", "),
        );
    }
}

pub(crate) async fn cors(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let is_preflight = req.method() == Method::OPTIONS;
    if is_preflight
        && (!req.headers().contains_key(header::ORIGIN)
            || !req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD))
    {
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/xml")],
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>BadRequest</Code>\
             <Message>Insufficient information. Origin request header needed.</Message></Error>",
        )
            .into_response();
    }
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        return next.run(req).await;
    };
    let path = req.uri().path().to_string();
    if req.method() == Method::OPTIONS {
        let requested_method = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let requested_headers = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let wanted: Vec<&str> = requested_headers
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect();
        let rules = rules_of(&state, &path);
        let rule = rules
            .as_deref()
            .and_then(|r| matching(r, &origin, &requested_method, &wanted));
        return match rule {
            Some(rule) => {
                let mut response = StatusCode::OK.into_response();
                put_headers(
                    response.headers_mut(),
                    rule,
                    &origin,
                    Some(&requested_headers),
                );
                response
            }
            None => (
                StatusCode::FORBIDDEN,
                [(header::CONTENT_TYPE, "application/xml")],
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessForbidden</Code>\
                 <Message>CORSResponse: This CORS request is not allowed.</Message></Error>",
            )
                .into_response(),
        };
    }
    let method = req.method().as_str().to_string();
    let mut response = next.run(req).await;
    if let Some(rules) = rules_of(&state, &path) {
        if let Some(rule) = matching(&rules, &origin, &method, &[]) {
            put_headers(response.headers_mut(), rule, &origin, None);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        CorsRule {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_methods: methods.iter().map(|s| s.to_string()).collect(),
            allowed_headers: headers.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn rules_match_origin_method_and_every_requested_header() {
        let rules = vec![
            rule(&["https://*.example.com"], &["GET"], &[]),
            rule(&["http://app"], &["PUT"], &["x-amz-*", "content-type"]),
        ];
        assert!(matching(&rules, "https://a.example.com", "GET", &[]).is_some());
        assert!(matching(&rules, "https://example.org", "GET", &[]).is_none());
        assert!(matching(
            &rules,
            "http://app",
            "PUT",
            &["x-amz-meta-a", "content-type"]
        )
        .is_some());
        assert!(matching(&rules, "http://app", "PUT", &["x-custom"]).is_none());
        assert!(matching(&rules, "http://app", "DELETE", &[]).is_none());
        assert_eq!(bucket_of("/b/k/x"), Some("b"));
        assert_eq!(bucket_of("/"), None);
    }
}
