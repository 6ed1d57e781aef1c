//! The HTTP front: axum serves health, readiness and Prometheus metrics, and
//! hands everything else to the s3s service. A middleware counts requests,
//! bounds concurrency and refuses what we do not serve (browser POST forms).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use parking_lot::Mutex;
use s3s::service::S3ServiceBuilder;

use crate::service::{StaticAuth, Strata};

#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Requests served at once; more wait in line.
    pub max_concurrent_requests: usize,
    /// Largest XML body (CompleteMultipartUpload with 10,000 parts fits).
    pub max_xml_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_concurrent_requests: 256,
            max_xml_bytes: 4 << 20,
        }
    }
}

/// What the HTTP layer shares: the store once recovered, and metrics.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<OnceLock<lsm::Store>>,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    pub fn new() -> Self {
        AppState {
            store: Arc::new(OnceLock::new()),
            metrics: Arc::new(Metrics::default()),
        }
    }
}

impl Default for AppState {
    fn default() -> Self {
        Self::new()
    }
}

const LATENCY_BUCKETS_S: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct LatencyHistogram {
    buckets: [u64; LATENCY_BUCKETS_S.len()],
    sum_s: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    /// (method, status) -> count
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, LatencyHistogram>>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    pub recovery_ms: AtomicU64,
}

impl Metrics {
    fn record(&self, operation: &str, status: u16, seconds: f64, bytes_in: u64, bytes_out: u64) {
        *self
            .requests
            .lock()
            .entry((operation.to_string(), status))
            .or_default() += 1;
        let mut latency = self.latency.lock();
        let histogram = latency.entry(operation.to_string()).or_default();
        for (i, bound) in LATENCY_BUCKETS_S.iter().enumerate() {
            if seconds <= *bound {
                histogram.buckets[i] += 1;
            }
        }
        histogram.sum_s += seconds;
        histogram.count += 1;
        self.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
    }

    fn render(&self, store: Option<&lsm::Store>) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(out, "# TYPE strata_requests_total counter");
        for ((operation, status), n) in self.requests.lock().iter() {
            let _ = writeln!(
                out,
                "strata_requests_total{{operation=\"{operation}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(out, "# TYPE strata_request_seconds histogram");
        for (operation, h) in self.latency.lock().iter() {
            let (sum, count) = (h.sum_s, h.count);
            for (bound, n) in LATENCY_BUCKETS_S.iter().zip(&h.buckets) {
                let _ = writeln!(
                    out,
                    "strata_request_seconds_bucket{{operation=\"{operation}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "strata_request_seconds_bucket{{operation=\"{operation}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "strata_request_seconds_sum{{operation=\"{operation}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "strata_request_seconds_count{{operation=\"{operation}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# TYPE strata_bytes_in_total counter\nstrata_bytes_in_total {}",
            self.bytes_in.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# TYPE strata_bytes_out_total counter\nstrata_bytes_out_total {}",
            self.bytes_out.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# TYPE strata_recovery_seconds gauge\nstrata_recovery_seconds {}",
            self.recovery_ms.load(Ordering::Relaxed) as f64 / 1000.0
        );
        if let Some(store) = store {
            let stats = store.stats();
            let used = (stats.segments_total as u64 - stats.segments_free as u64)
                * stats.segment_size_bytes;
            let free = stats.segments_free as u64 * stats.segment_size_bytes;
            let _ = writeln!(
                out,
                "# TYPE strata_device_bytes_used gauge\nstrata_device_bytes_used {used}"
            );
            let _ = writeln!(
                out,
                "# TYPE strata_device_bytes_free gauge\nstrata_device_bytes_free {free}"
            );
            let _ = writeln!(
                out,
                "# TYPE strata_objects gauge\nstrata_objects {}",
                stats.objects
            );
            let _ = writeln!(
                out,
                "# TYPE strata_logical_bytes gauge\nstrata_logical_bytes {}",
                stats.logical_bytes
            );
            if let Some(allocated) = stats.device_allocated_bytes {
                let _ = writeln!(out, "# TYPE strata_device_allocated_bytes gauge\nstrata_device_allocated_bytes {allocated}");
            }
        }
        out
    }
}

/// The S3 operation a request asks for, as a metrics label (s3s routes the
/// request itself; this only names it, from method, path and query).
fn operation(req: &Request) -> &'static str {
    let path = req.uri().path();
    if path.starts_with("/health") || path.starts_with("/minio/health") {
        return "Health";
    }
    if path == "/metrics" {
        return "Metrics";
    }
    let query = req.uri().query().unwrap_or("");
    let has = |name: &str| {
        query
            .split('&')
            .any(|pair| pair.split('=').next() == Some(name))
    };
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let bucket = parts.next().unwrap_or("");
    let key = parts.next().unwrap_or("");
    let copy = req.headers().contains_key("x-amz-copy-source");
    let method = req.method();
    match (bucket.is_empty(), key.is_empty()) {
        (true, _) if method == Method::GET => "ListBuckets",
        (false, true) => match *method {
            Method::GET if has("location") => "GetBucketLocation",
            Method::GET if has("versions") => "ListObjectVersions",
            Method::GET if has("versioning") => "GetBucketVersioning",
            Method::PUT if has("versioning") => "PutBucketVersioning",
            Method::GET if has("object-lock") => "GetObjectLockConfiguration",
            Method::PUT if has("object-lock") => "PutObjectLockConfiguration",
            Method::GET if has("tagging") => "GetBucketTagging",
            Method::PUT if has("tagging") => "PutBucketTagging",
            Method::DELETE if has("tagging") => "DeleteBucketTagging",
            Method::GET if has("lifecycle") => "GetBucketLifecycleConfiguration",
            Method::PUT if has("lifecycle") => "PutBucketLifecycleConfiguration",
            Method::DELETE if has("lifecycle") => "DeleteBucketLifecycle",
            Method::GET if has("uploads") => "ListMultipartUploads",
            Method::GET if query.contains("list-type=2") => "ListObjectsV2",
            Method::GET => "ListObjects",
            Method::HEAD => "HeadBucket",
            Method::PUT => "CreateBucket",
            Method::DELETE => "DeleteBucket",
            Method::POST if has("delete") => "DeleteObjects",
            _ => "Other",
        },
        (false, false) => match *method {
            Method::GET if has("uploadId") => "ListParts",
            Method::GET if has("attributes") => "GetObjectAttributes",
            Method::GET if has("tagging") => "GetObjectTagging",
            Method::PUT if has("tagging") => "PutObjectTagging",
            Method::DELETE if has("tagging") => "DeleteObjectTagging",
            Method::GET if has("retention") => "GetObjectRetention",
            Method::PUT if has("retention") => "PutObjectRetention",
            Method::GET if has("legal-hold") => "GetObjectLegalHold",
            Method::PUT if has("legal-hold") => "PutObjectLegalHold",
            Method::GET => "GetObject",
            Method::HEAD => "HeadObject",
            Method::PUT if has("uploadId") && copy => "UploadPartCopy",
            Method::PUT if has("uploadId") => "UploadPart",
            Method::PUT if copy => "CopyObject",
            Method::PUT => "PutObject",
            Method::POST if has("uploads") => "CreateMultipartUpload",
            Method::POST if has("uploadId") => "CompleteMultipartUpload",
            Method::DELETE if has("uploadId") => "AbortMultipartUpload",
            Method::DELETE => "DeleteObject",
            _ => "Other",
        },
        _ => "Other",
    }
}

fn content_length(headers: &axum::http::HeaderMap) -> u64 {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let is_form_post = req.method() == Method::POST
        && req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("multipart/form-data"));
    if is_form_post {
        return (
            StatusCode::NOT_IMPLEMENTED,
            "browser POST uploads are not supported",
        )
            .into_response();
    }
    let operation = operation(&req);
    let bytes_in = content_length(req.headers());
    // hyper sends no "100 Continue" for an empty body and answers at once;
    // botocore (aws CLI) then keeps a stale response parser on that pooled
    // connection and the next request on it hangs. Closing the connection
    // after such a response makes the client start the next one afresh.
    let empty_expect = bytes_in == 0
        && req
            .headers()
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let started = Instant::now();
    let mut response = next.run(req).await;
    if operation == "GetObjectAttributes" && response.status() == StatusCode::OK {
        response = unquote_etag(response).await;
    }
    if empty_expect {
        response.headers_mut().insert(
            header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    let bytes_out = content_length(response.headers());
    state.metrics.record(
        operation,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
        bytes_in,
        bytes_out,
    );
    response
}

/// GetObjectAttributes gives the ETag without quotes (s3s writes every
/// ETag element quoted). The answer is a few hundred bytes of XML.
async fn unquote_etag(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let text = String::from_utf8_lossy(&bytes);
    let fixed = match (text.find("<ETag>&quot;"), text.find("&quot;</ETag>")) {
        (Some(_), Some(_)) => {
            text.replacen("<ETag>&quot;", "<ETag>", 1)
                .replacen("&quot;</ETag>", "</ETag>", 1)
        }
        _ => text
            .replacen("<ETag>\"", "<ETag>", 1)
            .replacen("\"</ETag>", "</ETag>", 1),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(fixed))
}

async fn live() -> StatusCode {
    StatusCode::OK
}

async fn ready(State(state): State<AppState>) -> StatusCode {
    if state.store.get().is_some() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let body = state.metrics.render(state.store.get());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// The whole HTTP application.
pub fn router(
    state: AppState,
    access_key: String,
    secret_key: String,
    limits: &HttpLimits,
) -> Router {
    let mut builder = S3ServiceBuilder::new(Strata::new(state.store.clone()));
    builder.set_auth(StaticAuth::new(access_key, secret_key));
    let mut config = s3s::config::S3Config::default();
    config.xml_max_body_size = limits.max_xml_bytes;
    config.post_object_max_file_size = 0;
    builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
        config,
    ))));
    let s3 = builder.build();
    let s3_fallback = move |req: Request| {
        let s3 = s3.clone();
        async move {
            match s3.call(req.map(s3s::Body::http_body_unsync)).await {
                Ok(response) => response.map(Body::new),
                Err(e) => {
                    tracing::error!(error = ?e, "s3 service failed to render a response");
                    StatusCode::INTERNAL_SERVER_ERROR.into_response()
                }
            }
        }
    };
    Router::new()
        .route("/health", get(live))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/minio/health/live", get(live))
        .route("/minio/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .fallback(s3_fallback)
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .layer(tower::limit::ConcurrencyLimitLayer::new(
            limits.max_concurrent_requests,
        ))
        .with_state(state)
}
