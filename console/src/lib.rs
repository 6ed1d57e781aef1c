//! The web console (`--console-address`): a single-page app built into the
//! binary and the small API behind it. It holds no rights of its own:
//! every S3 or admin action it takes is the signed-in user's request,
//! handed in-process to the same S3 router, and so to the same
//! authorisation, as a request over the network; the user is named by
//! `s3api::SignedInAs` (proved at login) instead of a signature.

mod assets;
mod history;
mod proxy;
mod sessions;
pub mod sigv4;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

pub use history::History;
use sessions::Sessions;

const COOKIE: &str = "strata_console";

/// What the console needs from the server it belongs to.
pub struct Console {
    /// The S3 router, called in-process.
    pub s3: Router,
    pub keyring: Arc<s3api::Keyring>,
    pub state: s3api::AppState,
    pub history: Arc<History>,
    pub settings: ConsoleSettings,
    sessions: Sessions,
    usage: UsageCounts,
}

/// Bucket usage counted recently, and one count at a time: a count walks
/// the bucket's keys (300,000 keys: 80-110 ms of a core), and a signed-in
/// user refreshing in a loop took PUTs from 3,589/s to 656/s.
#[derive(Default)]
struct UsageCounts {
    recent: parking_lot::Mutex<HashMap<String, (Instant, lsm::BucketUsage)>>,
    counting: tokio::sync::Mutex<()>,
}

/// How long a bucket's count is answered again without a new walk.
const USAGE_FRESH: Duration = Duration::from_secs(5);

impl UsageCounts {
    fn fresh(&self, bucket: &str) -> Option<lsm::BucketUsage> {
        let recent = self.recent.lock();
        let (at, usage) = recent.get(bucket)?;
        (at.elapsed() < USAGE_FRESH).then_some(*usage)
    }
}

#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    pub session_ttl: Duration,
    /// The S3 endpoint share links name (e.g. `https://s3.example.com`);
    /// None: the host the browser used, on the S3 port.
    pub s3_endpoint: Option<String>,
    pub s3_port: u16,
    /// Whether the console itself is served over TLS (cookies are Secure).
    pub tls: bool,
    pub region: String,
}

impl Console {
    pub fn new(
        s3: Router,
        keyring: Arc<s3api::Keyring>,
        state: s3api::AppState,
        history: Arc<History>,
        settings: ConsoleSettings,
    ) -> Arc<Console> {
        Arc::new(Console {
            s3,
            keyring,
            state,
            history,
            sessions: Sessions::new(settings.session_ttl),
            settings,
            usage: UsageCounts::default(),
        })
    }
}

/// The signed-in user of a request that passed `guard`.
#[derive(Debug, Clone)]
struct Session {
    token: String,
    access_key: String,
}

pub fn router(console: Arc<Console>) -> Router {
    let api = Router::new()
        .route("/api/session", get(session))
        .route("/api/logout", post(logout))
        .route("/api/metrics", get(metrics))
        .route("/api/usage/{bucket}", get(usage))
        .route("/api/share", post(share))
        .route("/api/s3", any(proxy::s3_root))
        .route("/api/s3/", any(proxy::s3_root))
        .route("/api/s3/{*path}", any(proxy::s3))
        .route("/api/admin/{*path}", any(proxy::admin))
        .layer(middleware::from_fn_with_state(console.clone(), guard));
    Router::new()
        .route("/api/login", post(login))
        .merge(api)
        .merge(assets::routes())
        .with_state(console)
}

fn problem(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// A state-changing request must come from the console's own pages: its
/// Origin, when the browser sends one (it always does for these), names
/// the host the request went to. SameSite=Strict keeps the cookie off
/// other sites' requests as well; this holds even where it does not.
fn foreign_origin(method: &Method, headers: &HeaderMap) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest.trim_end_matches('/'));
    origin_host.is_none() || origin_host != host
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

async fn guard(State(console): State<Arc<Console>>, mut req: Request, next: Next) -> Response {
    if foreign_origin(req.method(), req.headers()) {
        return problem(StatusCode::FORBIDDEN, "a request from another origin");
    }
    let Some(token) = cookie_token(req.headers()) else {
        return problem(StatusCode::UNAUTHORIZED, "not signed in");
    };
    // The key must still be able to sign: a disabled user's or removed
    // key's session ends at its next request.
    let access_key = match console.sessions.get(&token) {
        Some(key) if console.keyring.may_sign(&key) => key,
        _ => return problem(StatusCode::UNAUTHORIZED, "the session has ended"),
    };
    req.extensions_mut().insert(Session { token, access_key });
    next.run(req).await
}

fn session_cookie(console: &Console, token: &str, max_age_s: u64) -> HeaderValue {
    let secure = if console.settings.tls { "; Secure" } else { "" };
    let cookie =
        format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_s}{secure}");
    HeaderValue::from_str(&cookie).unwrap_or(HeaderValue::from_static(""))
}

#[derive(Deserialize)]
struct Login {
    access_key: String,
    secret_key: String,
}

async fn login(
    State(console): State<Arc<Console>>,
    axum::Extension(client): axum::Extension<s3api::ClientInfo>,
    headers: HeaderMap,
    Json(login): Json<Login>,
) -> Response {
    if foreign_origin(&Method::POST, &headers) {
        return problem(StatusCode::FORBIDDEN, "a request from another origin");
    }
    // Each failure from an address doubles the wait before its next try.
    tokio::time::sleep(console.sessions.failure_delay(client.addr)).await;
    if !console
        .keyring
        .check_secret(&login.access_key, &login.secret_key)
    {
        console.sessions.failed(client.addr);
        tracing::info!(client = %client.addr, "console login refused");
        return problem(StatusCode::UNAUTHORIZED, "wrong access key or secret");
    }
    console.sessions.succeeded(client.addr);
    let Some(token) = console.sessions.create(&login.access_key) else {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, "no random source");
    };
    let max_age = console.settings.session_ttl.as_secs();
    let mut response = Json(json!({ "access_key": login.access_key })).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(&console, &token, max_age),
    );
    response
}

async fn session(axum::Extension(session): axum::Extension<Session>) -> Response {
    Json(json!({ "access_key": session.access_key })).into_response()
}

async fn logout(
    State(console): State<Arc<Console>>,
    axum::Extension(session): axum::Extension<Session>,
) -> Response {
    console.sessions.remove(&session.token);
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&console, "", 0));
    response
}

async fn metrics(State(console): State<Arc<Console>>) -> Response {
    let store = console.state.store.get();
    let device = store.map(|store| {
        let stats = store.stats();
        let total = u64::from(stats.segments_total) * stats.segment_size_bytes;
        let free = stats.segments_free as u64 * stats.segment_size_bytes;
        json!({
            "size_bytes": total,
            "used_bytes": total - free.min(total),
            "free_bytes": free,
            "objects": stats.objects,
            "logical_bytes": stats.logical_bytes,
            "compaction_paused": store.compaction_paused(),
        })
    });
    Json(json!({
        "ready": store.is_some(),
        "device": device,
        "history": console.history.json(),
    }))
    .into_response()
}

/// A bucket's usage, for whoever may list it: HeadBucket, run as the
/// user, decides.
async fn usage(
    State(console): State<Arc<Console>>,
    axum::Extension(client): axum::Extension<s3api::ClientInfo>,
    axum::Extension(session): axum::Extension<Session>,
    Path(bucket): Path<String>,
) -> Response {
    let head = proxy::run_as(
        &console,
        &session,
        client,
        Method::HEAD,
        &format!("/{bucket}"),
    )
    .await;
    if !head.status().is_success() {
        return problem(head.status(), "the bucket cannot be read");
    }
    let Some(store) = console.state.store.get() else {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "the server is starting");
    };
    if let Some(usage) = console.usage.fresh(&bucket) {
        return Json(usage).into_response();
    }
    let _counting = console.usage.counting.lock().await;
    // Counted while this request waited its turn.
    if let Some(usage) = console.usage.fresh(&bucket) {
        return Json(usage).into_response();
    }
    // A walk of the bucket's keys: on a blocking thread, not a worker.
    let (store, walked) = (store.clone(), bucket.clone());
    match tokio::task::spawn_blocking(move || store.bucket_usage(&walked)).await {
        Ok(Ok(usage)) => {
            let mut recent = console.usage.recent.lock();
            recent.retain(|_, (at, _)| at.elapsed() < USAGE_FRESH);
            recent.insert(bucket, (Instant::now(), usage));
            Json(usage).into_response()
        }
        Ok(Err(_)) => problem(StatusCode::NOT_FOUND, "no such bucket"),
        Err(_) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "usage could not be counted",
        ),
    }
}

#[derive(Deserialize)]
struct ShareRequest {
    bucket: String,
    key: String,
    expires_s: u64,
}

/// A presigned GET for the signed-in user's key: whoever holds the link
/// reads the object until it expires, with that user's rights, as a link
/// made with `aws s3 presign` would.
async fn share(
    State(console): State<Arc<Console>>,
    axum::Extension(session): axum::Extension<Session>,
    headers: HeaderMap,
    Json(ask): Json<ShareRequest>,
) -> Response {
    if ask.expires_s == 0 || ask.expires_s > 7 * 24 * 3600 {
        return problem(
            StatusCode::BAD_REQUEST,
            "a link expires within 1 second and 7 days",
        );
    }
    let Some(secret) = console.keyring.secret(&session.access_key) else {
        return problem(StatusCode::UNAUTHORIZED, "the session has ended");
    };
    let endpoint = match &console.settings.s3_endpoint {
        Some(endpoint) => endpoint.trim_end_matches('/').to_string(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1");
            let hostname = match host.rsplit_once(':') {
                Some((name, port)) if !name.is_empty() && port.parse::<u16>().is_ok() => name,
                _ => host,
            };
            let scheme = if console.settings.tls {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{hostname}:{}", console.settings.s3_port)
        }
    };
    let url = sigv4::presign_get(&sigv4::Presign {
        endpoint: &endpoint,
        bucket: &ask.bucket,
        key: &ask.key,
        region: &console.settings.region,
        access_key: &session.access_key,
        secret_key: &secret,
        expires_s: ask.expires_s,
        now: time::OffsetDateTime::now_utc(),
    });
    Json(json!({ "url": url })).into_response()
}
