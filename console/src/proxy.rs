//! The console's S3 and admin requests: the browser's request, stripped of
//! anything that could name another identity (cookie, Authorization), with
//! the signed-in user and the browser's address attached, handed to the S3
//! router in-process. What the router answers goes back as it is, under a
//! sandboxing Content-Security-Policy: an object's HTML opened from the
//! console's origin cannot run there.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, Method, Uri};
use axum::response::Response;
use tower::ServiceExt;

use crate::{Console, Session};

/// Where the admin API lives on the S3 router.
const ADMIN_PREFIX: &str = "/strata/admin/v1/";

pub(crate) async fn s3_root(
    State(console): State<Arc<Console>>,
    axum::Extension(client): axum::Extension<s3api::ClientInfo>,
    axum::Extension(session): axum::Extension<Session>,
    req: Request,
) -> Response {
    forward(&console, &session, client, req, "/".to_string()).await
}

pub(crate) async fn s3(
    State(console): State<Arc<Console>>,
    axum::Extension(client): axum::Extension<s3api::ClientInfo>,
    axum::Extension(session): axum::Extension<Session>,
    Path(path): Path<String>,
    req: Request,
) -> Response {
    // The path as the browser encoded it: keys keep their escapes.
    let raw = req
        .uri()
        .path()
        .strip_prefix("/api/s3")
        .map_or_else(|| format!("/{path}"), str::to_string);
    forward(&console, &session, client, req, raw).await
}

pub(crate) async fn admin(
    State(console): State<Arc<Console>>,
    axum::Extension(client): axum::Extension<s3api::ClientInfo>,
    axum::Extension(session): axum::Extension<Session>,
    Path(path): Path<String>,
    req: Request,
) -> Response {
    forward(
        &console,
        &session,
        client,
        req,
        format!("{ADMIN_PREFIX}{path}"),
    )
    .await
}

/// A bodiless request of the console's own, as the user.
pub(crate) async fn run_as(
    console: &Console,
    session: &Session,
    client: s3api::ClientInfo,
    method: Method,
    path: &str,
) -> Response {
    let mut req = Request::new(Body::empty());
    *req.method_mut() = method;
    forward(console, session, client, req, path.to_string()).await
}

async fn forward(
    console: &Console,
    session: &Session,
    client: s3api::ClientInfo,
    req: Request,
    path: String,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let target = match parts.uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    parts.uri = match target.parse::<Uri>() {
        Ok(uri) => uri,
        Err(_) => return crate::problem(axum::http::StatusCode::BAD_REQUEST, "a bad path"),
    };
    for name in [
        header::COOKIE,
        header::AUTHORIZATION,
        header::ORIGIN,
        header::REFERER,
    ] {
        parts.headers.remove(name);
    }
    parts.extensions = Default::default();
    parts.extensions.insert(client);
    parts
        .extensions
        .insert(s3api::SignedInAs(session.access_key.clone()));
    let request = Request::from_parts(parts, body);
    let mut response = match console.s3.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
