//! The HTTP front: axum serves health, readiness and Prometheus metrics, and
//! hands everything else to the s3s service. A middleware counts requests
//! and refuses what we do not serve (browser POST forms); another sheds
//! load past the caps on requests and bytes in flight, and while the
//! runtime's queues overflow, with 503 SlowDown, as S3 does, rather than
//! queueing without bound (health and metrics are never shed).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use parking_lot::Mutex;
use s3s::service::S3ServiceBuilder;

use crate::authz::{Access, AccessCheck};
use crate::identity::{Keyring, KeyringAuth};
use crate::service::Strata;

#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Requests served at once; more are answered 503 SlowDown at once.
    pub max_concurrent_requests: usize,
    /// Request body bytes in flight at once (each request counts its
    /// declared length, up to what one upload can hold in memory); past
    /// it, 503 SlowDown.
    pub max_in_flight_bytes: u64,
    /// Largest XML body (CompleteMultipartUpload with 10,000 parts fits).
    pub max_xml_bytes: usize,
    /// A request body that sends nothing for this long fails with
    /// RequestTimeout; what it had written is discarded.
    pub body_timeout: Duration,
    /// Past this many ready tasks in the runtime's shared queue, or four
    /// times as many in all its queues, new requests are answered 503
    /// SlowDown; zero: never. Requests not yet read wait there, unseen by
    /// the count of requests in service.
    pub max_queued_tasks: usize,
    /// Largest file of a browser POST upload: s3s holds it in memory
    /// whole, so it is bounded well below S3's 5 GB (larger uploads from
    /// a browser use multipart).
    pub max_post_object_bytes: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_concurrent_requests: 256,
            max_in_flight_bytes: 2 << 30,
            max_xml_bytes: 4 << 20,
            body_timeout: Duration::from_secs(30),
            max_queued_tasks: 16,
            max_post_object_bytes: 64 << 20,
        }
    }
}

/// What one upload holds in memory at most (its write window of chunks):
/// a request counts no more than this against the bytes in flight.
const REQUEST_BYTES_CAP: u64 = 32 << 20;

/// What the HTTP layer shares: the store once recovered, and metrics.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<OnceLock<lsm::Store>>,
    pub metrics: Arc<Metrics>,
    /// The region this server answers for (CreateBucket of a bucket one
    /// owns answers as AWS does there).
    pub region: String,
    /// New buckets start with ACLs off and public access blocked, as on
    /// AWS since 2023 (otherwise as MinIO and Ceph RGW: ACLs on, no block).
    pub aws_bucket_defaults: bool,
    /// Master keys and when to encrypt.
    pub encryption: Arc<crate::encryption::SseSettings>,
}

impl AppState {
    pub fn new(region: &str) -> Self {
        AppState {
            store: Arc::new(OnceLock::new()),
            metrics: Arc::new(Metrics::default()),
            region: region.to_string(),
            aws_bucket_defaults: false,
            encryption: Arc::default(),
        }
    }
}

/// Upper bounds of the request latency histogram's buckets.
pub const LATENCY_BUCKETS_S: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct LatencyHistogram {
    buckets: [u64; LATENCY_BUCKETS_S.len()],
    sum_s: f64,
    count: u64,
}

/// Requests by operation (count, and how many took at most each of
/// `LATENCY_BUCKETS_S`), and bytes in and out, since the start.
#[derive(Debug, Clone, Default)]
pub struct MetricsSnapshot {
    pub operations: BTreeMap<String, (u64, [u64; LATENCY_BUCKETS_S.len()])>,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

#[derive(Default)]
pub struct Metrics {
    /// (method, status) -> count
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, LatencyHistogram>>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    pub recovery_ms: AtomicU64,
    /// Connections and requests cut off, by stage: header, idle, body,
    /// send, tls.
    timeouts: Mutex<BTreeMap<&'static str, u64>>,
    /// Connections closed at accept, by reason: global_cap, address_cap.
    refused: Mutex<BTreeMap<&'static str, u64>>,
    /// Requests answered 503 SlowDown, by reason: requests, bytes, queue.
    shed: Mutex<BTreeMap<&'static str, u64>>,
    /// Idle connections closed to make room at the connection cap.
    evicted: AtomicU64,
    /// Ready tasks standing in the runtime's shared queue, and in all its
    /// queues, as last sampled.
    queued_tasks: AtomicU64,
    ready_tasks: AtomicU64,
    /// Requests refused AccessDenied, by reason: explicit_deny,
    /// not_allowed, anonymous.
    denied: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    pub fn connection_timeout(&self, stage: &'static str) {
        *self.timeouts.lock().entry(stage).or_default() += 1;
    }

    pub fn connection_evicted(&self) {
        self.evicted.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_refused(&self, reason: &'static str) {
        *self.refused.lock().entry(reason).or_default() += 1;
    }

    pub(crate) fn access_denied(&self, reason: &'static str) {
        *self.denied.lock().entry(reason).or_default() += 1;
    }

    fn request_shed(&self, reason: &'static str) {
        *self.shed.lock().entry(reason).or_default() += 1;
    }

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

    /// The counters as they stand, for the console's history.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let operations = self
            .latency
            .lock()
            .iter()
            .map(|(op, h)| (op.clone(), (h.count, h.buckets)))
            .collect();
        MetricsSnapshot {
            operations,
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
        }
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
        for (name, help, counts) in [
            ("strata_timeouts_total", "stage", &self.timeouts),
            ("strata_connections_refused_total", "reason", &self.refused),
            ("strata_requests_shed_total", "reason", &self.shed),
            ("strata_access_denied_total", "reason", &self.denied),
        ] {
            let _ = writeln!(out, "# TYPE {name} counter");
            for (label, n) in counts.lock().iter() {
                let _ = writeln!(out, "{name}{{{help}=\"{label}\"}} {n}");
            }
        }
        let _ = writeln!(
            out,
            "# TYPE strata_connections_evicted_total counter\nstrata_connections_evicted_total {}",
            self.evicted.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# TYPE strata_runtime_queued_tasks gauge\nstrata_runtime_queued_tasks {}",
            self.queued_tasks.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# TYPE strata_runtime_ready_tasks gauge\nstrata_runtime_ready_tasks {}",
            self.ready_tasks.load(Ordering::Relaxed)
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
            // What the used segments would shrink to with every dead record
            // compacted away: the gap to bytes_used is compaction's debt.
            let _ = writeln!(
                out,
                "# TYPE strata_device_live_bytes gauge\nstrata_device_live_bytes {}",
                store.space_report().live_bytes
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

/// The id a request is known by in its answer (`x-amz-request-id`, and
/// RequestId in an access denial), and in the server's log.
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub String);

static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(0);

fn next_request_id() -> RequestId {
    // The process start in the high bits keeps ids unique across restarts.
    static STARTED_S: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let started = *STARTED_S.get_or_init(|| lsm::now_ms() / 1000);
    let n = REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed);
    RequestId(format!("{:08X}{:08X}", started as u32, n as u32))
}

async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let request_id = next_request_id();
    req.extensions_mut().insert(request_id.clone());
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
    sigv2_bucket_path(&mut req);
    let started = Instant::now();
    let mut response = match presign_refusal(req.uri()) {
        Some(refusal) => refusal,
        None => next.run(req).await,
    };
    if response.status().is_client_error() || response.status().is_server_error() {
        response = with_request_id(response, &request_id.0).await;
    }
    if let Ok(value) = axum::http::HeaderValue::from_str(&request_id.0) {
        response.headers_mut().insert("x-amz-request-id", value);
    }
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
/// An S3 error document names its request (RequestId), as the header
/// does (s3s writes it only where the error carried one), and a refused
/// POST policy is answered as S3 answers it.
async fn with_request_id(response: Response, request_id: &str) -> Response {
    let is_xml = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/xml"));
    if !is_xml {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Error documents are small; anything larger is passed on untouched.
    let Ok(bytes) = axum::body::to_bytes(body, 64 << 10).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let text = String::from_utf8_lossy(&bytes);
    if !text.contains("</Error>") {
        return Response::from_parts(parts, Body::from(bytes));
    }
    let mut fixed = text.into_owned();
    // A browser upload that its POST policy does not allow is a refusal,
    // as S3 answers it (403 AccessDenied), not a malformed request: s3s
    // answers its failed conditions 400.
    if parts.status == StatusCode::BAD_REQUEST {
        let failed = |what: &str| {
            fixed.contains(&format!(
                "<Code>InvalidPolicyDocument</Code><Message>{what}"
            ))
        };
        if failed("Policy condition") || failed("Bucket in form field") {
            fixed = fixed.replacen(
                "<Code>InvalidPolicyDocument</Code><Message>",
                "<Code>AccessDenied</Code><Message>Invalid according to Policy: ",
                1,
            );
            parts.status = StatusCode::FORBIDDEN;
        }
    }
    if !fixed.contains("<RequestId>") {
        fixed = fixed.replacen(
            "</Error>",
            &format!("<RequestId>{request_id}</RequestId></Error>"),
            1,
        );
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(fixed))
}

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

/// Requests and body bytes in flight, against their caps.
#[derive(Clone)]
struct Load {
    requests: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    limits: Arc<HttpLimits>,
    metrics: Arc<Metrics>,
}

/// Gives back a request's share of the load when it is answered.
struct Admitted {
    load: Load,
    bytes: u64,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.load.requests.fetch_sub(1, Ordering::Relaxed);
        self.load.bytes.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// An S3 error document answered before s3s sees the request.
pub(crate) fn early_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/xml"),
    );
    response
}

fn slow_down() -> Response {
    let mut response = early_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "SlowDown",
        "Please reduce your request rate.",
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    response
}

/// botocore signs a SigV2 request to a bucket with the resource `/bucket/`
/// (the form a virtual-hosted request has) but sends the path `/bucket`,
/// and AWS accepts it; s3s checks the path as sent. Such a request's path
/// gains the slash before s3s sees it (s3s routes both forms alike).
fn sigv2_bucket_path(req: &mut Request) {
    let header_v2 = req
        .headers()
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes().starts_with(b"AWS "));
    let query = req.uri().query().unwrap_or("");
    let query_v2 = query.contains("AWSAccessKeyId=") && query.contains("Signature=");
    let path = req.uri().path();
    if !(header_v2 || query_v2) || path.len() < 2 || path[1..].contains('/') {
        return;
    }
    let target = match req.uri().query() {
        Some(query) => format!("{path}/?{query}"),
        None => format!("{path}/"),
    };
    if let Ok(uri) = target.parse() {
        *req.uri_mut() = uri;
    }
}

/// A presigned URL's lifetime out of S3's range (negative, zero, past a
/// week) is refused here: s3s would refuse a negative one as a malformed
/// query (400) where AWS answers 403.
fn presign_refusal(uri: &axum::http::Uri) -> Option<Response> {
    let refusal = crate::request_conditions::check_presigned_expiry(uri).err()?;
    Some(early_error(
        refusal.status_code().unwrap_or(StatusCode::FORBIDDEN),
        refusal.code().as_str(),
        refusal.message().unwrap_or("Access Denied"),
    ))
}

async fn shed(State(load): State<Load>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let probe =
        path.starts_with("/health") || path.starts_with("/minio/health") || path == "/metrics";
    if probe {
        return next.run(req).await;
    }
    let bytes = content_length(req.headers()).min(REQUEST_BYTES_CAP);
    let requests = load.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let in_flight = load.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
    let admitted = Admitted {
        load: load.clone(),
        bytes,
    };
    if requests > load.limits.max_concurrent_requests as u64 {
        load.metrics.request_shed("requests");
        return slow_down();
    }
    if in_flight > load.limits.max_in_flight_bytes && bytes > 0 {
        load.metrics.request_shed("bytes");
        return slow_down();
    }
    let queued = load.metrics.queued_tasks.load(Ordering::Relaxed);
    let ready = load.metrics.ready_tasks.load(Ordering::Relaxed);
    let max = load.limits.max_queued_tasks as u64;
    if max > 0 && (queued > max || ready > READY_PER_QUEUED * max) {
        load.metrics.request_shed("queue");
        return slow_down();
    }
    let response = next.run(req).await;
    drop(admitted);
    response
}

/// The overload rule's second bound: ready tasks in all of the runtime's
/// queues, as a multiple of `max_queued_tasks` in the shared one.
const READY_PER_QUEUED: u64 = 4;

/// Samples the runtime's queues every few milliseconds. Under overload
/// hundreds of connections have a request ready. Up to 256 wait in each
/// worker's own queue, and a request read from there has waited for all
/// those before it: with 256 clients on one core nothing overflowed, and
/// p99 was 52 ms against 12 at 64 clients. Past that they overflow into the
/// shared queue, which workers poll only now and then (p99 141 ms at 1,024
/// clients with neither bound). New requests are shed while more than
/// `max_queued_tasks` stand in the shared queue or four times that in all
/// queues (benches/overload.sh, one core: p99 20 ms at 256 clients, 31-36
/// ms at 1,024). The bound on all queues alone at 16 shed 38,000 requests
/// a minute under benches/soak.sh, none overloaded: engine and blocking-pool
/// threads wake tasks in bursts. How late a probe task runs did not show
/// queueing at all: tasks woken by I/O run first.
async fn watch_runtime_queue(metrics: std::sync::Weak<Metrics>) {
    const TICK: Duration = Duration::from_millis(5);
    // Bursts pass through the queues under ordinary load: a queue counts
    // only while it stands, its least over the last samples.
    const WINDOW: usize = 4;
    let runtime = tokio::runtime::Handle::current();
    let mut shared = [0u64; WINDOW];
    let mut all = [0u64; WINDOW];
    for tick in 0usize.. {
        tokio::time::sleep(TICK).await;
        let depths = runtime.metrics();
        shared[tick % WINDOW] = depths.global_queue_depth() as u64;
        all[tick % WINDOW] = ready_tasks(&depths);
        // The app it watches for is gone (a router built and dropped).
        let Some(metrics) = metrics.upgrade() else {
            return;
        };
        let standing = |recent: &[u64; WINDOW]| recent.iter().copied().min().unwrap_or(0);
        metrics
            .queued_tasks
            .store(standing(&shared), Ordering::Relaxed);
        metrics.ready_tasks.store(standing(&all), Ordering::Relaxed);
    }
}

/// Tasks ready to run and waiting for a worker: in the shared queue, and
/// (with `--cfg tokio_unstable`, which .cargo/config.toml sets) in each
/// worker's own queue.
fn ready_tasks(metrics: &tokio::runtime::RuntimeMetrics) -> u64 {
    let shared = metrics.global_queue_depth();
    #[cfg(tokio_unstable)]
    let own: usize = (0..metrics.num_workers())
        .map(|w| metrics.worker_local_queue_depth(w))
        .sum();
    #[cfg(not(tokio_unstable))]
    let own = 0;
    (shared + own) as u64
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
pub fn router(state: AppState, keyring: Arc<Keyring>, limits: &HttpLimits) -> Router {
    let access = Arc::new(Access::new(
        keyring.clone(),
        state.store.clone(),
        state.metrics.clone(),
    ));
    let mut builder =
        S3ServiceBuilder::new(Strata::new(&state, limits.body_timeout, access.clone()));
    builder.set_auth(KeyringAuth(keyring));
    builder.set_access(AccessCheck(access.clone()));
    builder.set_route(crate::admin::AdminRoute { access });
    let mut config = s3s::config::S3Config::default();
    config.xml_max_body_size = limits.max_xml_bytes;
    config.post_object_max_file_size = limits.max_post_object_bytes;
    config.form_max_fields_size = crate::post_form::MAX_FORM_FIELDS_BYTES;
    builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
        config,
    ))));
    let s3 = builder.build();
    if let (Ok(runtime), true) = (
        tokio::runtime::Handle::try_current(),
        limits.max_queued_tasks > 0,
    ) {
        runtime.spawn(watch_runtime_queue(Arc::downgrade(&state.metrics)));
    }
    let stall = limits.body_timeout;
    let s3_fallback = move |req: Request| {
        let s3 = s3.clone();
        async move {
            let req = match crate::post_form::prepare(req, stall).await {
                Ok(req) => req,
                Err(refusal) => return refusal,
            };
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
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::cors::cors,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .layer(axum::middleware::from_fn_with_state(
            Load {
                requests: Arc::new(AtomicU64::new(0)),
                bytes: Arc::new(AtomicU64::new(0)),
                limits: Arc::new(limits.clone()),
                metrics: state.metrics.clone(),
            },
            shed,
        ))
        .with_state(state)
}

#[cfg(all(test, tokio_unstable))]
mod tests {
    /// Tasks woken on a worker wait in its own queue, which the shared
    /// queue's depth does not show; the overload rule counts them too.
    #[test]
    fn ready_tasks_count_the_workers_own_queues() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .expect("runtime");
        let (tx, rx) = std::sync::mpsc::channel();
        runtime.spawn(async move {
            // Spawned on the worker, which this task keeps busy: they wait
            // in its own queue (all but the last, in its LIFO slot).
            for _ in 0..100 {
                tokio::spawn(async {});
            }
            let metrics = tokio::runtime::Handle::current().metrics();
            let _ = tx.send((metrics.global_queue_depth(), super::ready_tasks(&metrics)));
        });
        let (shared, ready) = rx.recv().expect("measured");
        assert_eq!(shared, 0);
        assert!(ready >= 99, "{ready} ready tasks counted");
    }
}
