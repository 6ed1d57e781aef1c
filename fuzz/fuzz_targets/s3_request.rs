//! S3 requests through the real router (`s3api::router`: axum middleware,
//! s3s routing/SigV4/XML/aws-chunked, Strata's handlers, lsm) without a
//! network: `tower::ServiceExt::oneshot` on a store over an in-memory
//! `blockdev::FaultyDevice`. Requests are SIGNED correctly (SigV4 computed
//! here) unless the input asks otherwise, so the handlers are reached.
//!
//! Each input is a sequence of up to 8 requests, in a text format that is
//! easy to seed and to read in a crash report (see README.md):
//!
//! ```text
//! <mode> <METHOD> <path>[?<query>]\n
//! <header>: <value>\n ...
//! \n
//! <body>
//! \n~~~\n            (next request)
//! ```
//!
//! mode: S signed (x-amz-content-sha256 = sha256 of the body), U signed
//! UNSIGNED-PAYLOAD, T signed STREAMING-UNSIGNED-PAYLOAD-TRAILER (the body is
//! sent as is, aws-chunked), C signed STREAMING-AWS4-HMAC-SHA256-PAYLOAD,
//! B signed with a wrong secret, anything else: no authentication.
//! The path and query are the decoded forms; the harness percent-encodes.
//! `$U` becomes the last UploadId a response carried, `$E` the last ETag,
//! `$E1`..`$E9` the n-th ETag of the sequence. `x-fuzz-repeat: N` (not sent)
//! repeats the body up to N bytes (at most 2 MiB) to reach chunked objects.
//!
//! Each input gets a fresh store (from a template image holding bucket
//! `bkt`, object `bkt/k` inline and `bkt/big` in chunks), so a crash
//! replays exactly. STRATA_FUZZ_DEBUG=1 prints each request and answer.
//! Oracle: no panic, no hang (10 s per request), bounded memory, no 500
//! (the device never fails here), and a signed plain PUT that answered 200
//! reads back byte-identical (full GET and a range GET).

#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use blockdev::{BlockDevice, FaultConfig, FaultyDevice};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use tower::ServiceExt;

mod shared;
use shared::{debug, runtime};

const ACCESS_KEY: &str = "fuzzaccess";
const SECRET_KEY: &str = "fuzzsecret0123456789";
const REGION: &str = "us-east-1";
const HOST: &str = "localhost:9000";
/// 4 segments: the template fills part of one; two more may take data before
/// the writer's reserve answers NoSpace (exercised too). Kept small: every
/// input copies the image (three times, counting FaultyDevice's own copies).
const DEVICE_BYTES: u64 = 5 << 20;
const SEGMENT_BYTES: u64 = 1 << 20;
const MAX_REQUESTS: usize = 8;
const MAX_REPEAT_BYTES: usize = 2 << 20;
const MAX_RESPONSE_BYTES: usize = 8 << 20;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

fn store_config() -> lsm::StoreConfig {
    lsm::StoreConfig {
        // Small chunks and parts so that small bodies reach the chunked
        // and multipart paths; a small cache bounds memory.
        chunk_size_bytes: 16 << 10,
        min_part_size_bytes: 64,
        cache_bytes: 1 << 20,
        ..Default::default()
    }
}

fn limits() -> s3api::HttpLimits {
    s3api::HttpLimits {
        max_concurrent_requests: 4,
        max_xml_bytes: 1 << 20,
        max_in_flight_bytes: 64 << 20,
        ..Default::default()
    }
}

// ------------------------------------------------------------------- sigv4

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&sha256(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// AWS's URI encoding: unreserved bytes as they are, the rest as %XX.
fn uri_encode(input: &[u8], encode_slash: bool) -> String {
    let mut out = String::with_capacity(input.len() * 3);
    for &b in input {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'~' | b'.' => {
                out.push(b as char)
            }
            b'/' if !encode_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// (YYYYMMDD, YYYYMMDDTHHMMSSZ) for now, UTC.
fn amz_date() -> (String, String) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let date = format!("{y:04}{m:02}{d:02}");
    let time = format!(
        "{date}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    (date, time)
}

// ----------------------------------------------------------------- parsing

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Signed,
    Unsigned,
    Trailer,
    Streaming,
    BadSecret,
    Anonymous,
}

struct Spec {
    mode: Mode,
    method: Vec<u8>,
    path: Vec<u8>,
    query: Vec<(Vec<u8>, Vec<u8>)>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    body: Vec<u8>,
    /// The input set content-length itself: the body may not be what is stored.
    explicit_length: bool,
}

fn split_once<'a>(s: &'a [u8], sep: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let at = s.windows(sep.len()).position(|w| w == sep)?;
    Some((&s[..at], &s[at + sep.len()..]))
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end.max(start)]
}

fn parse(raw: &[u8]) -> Option<Spec> {
    let (head, body) = split_once(raw, b"\n\n").unwrap_or((raw, b""));
    let mut lines = head.split(|&b| b == b'\n');
    let first = lines.next()?;
    let mut words = first.splitn(3, |&b| b == b' ');
    let mode = match words.next()? {
        b"S" => Mode::Signed,
        b"U" => Mode::Unsigned,
        b"T" => Mode::Trailer,
        b"C" => Mode::Streaming,
        b"B" => Mode::BadSecret,
        _ => Mode::Anonymous,
    };
    let method = words.next()?.to_vec();
    let target = words.next().unwrap_or(b"/");
    let (path, query) = split_once(target, b"?").unwrap_or((target, b""));
    let query = query
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| match split_once(pair, b"=") {
            Some((n, v)) => (n.to_vec(), v.to_vec()),
            None => (pair.to_vec(), Vec::new()),
        })
        .collect();
    let mut headers = Vec::new();
    let mut repeat = 0usize;
    let mut explicit_length = false;
    for line in lines {
        let Some((name, value)) = split_once(line, b":") else {
            continue;
        };
        let name = trim(name).to_ascii_lowercase();
        let value = trim(value).to_vec();
        if name == b"x-fuzz-repeat" {
            repeat = std::str::from_utf8(&value)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            continue;
        }
        explicit_length |= name == b"content-length";
        headers.push((name, value));
    }
    let mut body = body.to_vec();
    if !body.is_empty() && repeat > body.len() {
        let target = repeat.min(MAX_REPEAT_BYTES);
        let unit = body.clone();
        while body.len() < target {
            let n = unit.len().min(target - body.len());
            body.extend_from_slice(&unit[..n]);
        }
    }
    let mut path = path.to_vec();
    if path.first() != Some(&b'/') {
        path.insert(0, b'/');
    }
    Some(Spec {
        mode,
        method,
        path,
        query,
        headers,
        body,
        explicit_length,
    })
}

/// Replaces `$U`, `$E<n>` and `$E` with what earlier responses said.
struct Vars {
    upload_id: Vec<u8>,
    etags: Vec<Vec<u8>>,
}

impl Vars {
    fn apply(&self, s: &[u8]) -> Vec<u8> {
        if !s.contains(&b'$') {
            return s.to_vec();
        }
        let mut out = Vec::with_capacity(s.len() + 64);
        let mut i = 0;
        while i < s.len() {
            if s[i] == b'$' && i + 1 < s.len() {
                match s[i + 1] {
                    b'U' => {
                        out.extend_from_slice(&self.upload_id);
                        i += 2;
                        continue;
                    }
                    b'E' => {
                        let digit = s.get(i + 2).filter(|d| (b'1'..=b'9').contains(d));
                        let (tag, used) = match digit {
                            Some(d) => (self.etags.get((d - b'1') as usize), 3),
                            None => (self.etags.last(), 2),
                        };
                        out.extend_from_slice(tag.map_or(&b""[..], |t| &t[..]));
                        i += used;
                        continue;
                    }
                    _ => {}
                }
            }
            out.push(s[i]);
            i += 1;
        }
        out
    }

    fn learn(&mut self, headers: &axum::http::HeaderMap, body: &[u8]) {
        if let Some(etag) = headers.get("etag") {
            self.etags.push(etag.as_bytes().to_vec());
        }
        if let Some((_, rest)) = split_once(body, b"<UploadId>") {
            if let Some((id, _)) = split_once(rest, b"</UploadId>") {
                self.upload_id = id.to_vec();
            }
        }
    }
}

// ---------------------------------------------------------------- requests

fn build(spec: &Spec) -> Option<Request<Body>> {
    let method = Method::from_bytes(&spec.method).ok()?;
    let path = uri_encode(&spec.path, false);
    // The canonical query: as s3s builds it (stable sorts by decoded then
    // encoded name); the URL carries the same encoded pairs.
    let mut decoded: Vec<(&[u8], &[u8])> =
        spec.query.iter().map(|(n, v)| (&n[..], &v[..])).collect();
    decoded.sort_by(|a, b| a.0.cmp(b.0));
    let mut encoded: Vec<(String, String)> = decoded
        .iter()
        .map(|(n, v)| (uri_encode(n, true), uri_encode(v, true)))
        .collect();
    encoded.sort_by(|a, b| a.0.cmp(&b.0));
    let query = encoded
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let uri = if query.is_empty() {
        path.clone()
    } else {
        format!("{path}?{query}")
    };

    let mut builder = Request::builder().method(method.clone()).uri(&uri);
    let mut has_host = false;
    let mut has_length = false;
    for (name, value) in &spec.headers {
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        else {
            continue;
        };
        has_host |= name == "host";
        has_length |= name == "content-length";
        builder = builder.header(name, value);
    }
    if !has_host {
        builder = builder.header("host", HOST);
    }
    if !has_length {
        builder = builder.header("content-length", spec.body.len());
    }

    let payload = match spec.mode {
        Mode::Anonymous => None,
        Mode::Signed | Mode::BadSecret => Some(hex::encode(sha256(&spec.body))),
        Mode::Unsigned => Some("UNSIGNED-PAYLOAD".to_string()),
        Mode::Trailer => Some("STREAMING-UNSIGNED-PAYLOAD-TRAILER".to_string()),
        Mode::Streaming => Some("STREAMING-AWS4-HMAC-SHA256-PAYLOAD".to_string()),
    };
    if let Some(payload) = payload {
        let host = if has_host {
            spec.headers
                .iter()
                .find(|(n, _)| n == b"host")
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        } else {
            HOST.to_string()
        };
        let (date, datetime) = amz_date();
        let canonical = format!(
            "{}\n{}\n{}\nhost:{}\nx-amz-content-sha256:{}\nx-amz-date:{}\n\nhost;x-amz-content-sha256;x-amz-date\n{}",
            method.as_str(),
            path,
            query,
            host.trim(),
            payload,
            datetime,
            payload
        );
        let scope = format!("{date}/{REGION}/s3/aws4_request");
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{datetime}\n{scope}\n{}",
            hex::encode(sha256(canonical.as_bytes()))
        );
        let secret = if spec.mode == Mode::BadSecret {
            "not-the-secret"
        } else {
            SECRET_KEY
        };
        let mut key = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
        for part in [REGION, "s3", "aws4_request"] {
            key = hmac_sha256(&key, part.as_bytes());
        }
        let signature = hex::encode(hmac_sha256(&key, to_sign.as_bytes()));
        builder = builder
            .header("x-amz-date", &datetime)
            .header("x-amz-content-sha256", &payload)
            .header(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}"
                ),
            );
    }
    builder.body(Body::from(spec.body.clone())).ok()
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

async fn send(router: &axum::Router, request: Request<Body>, what: &str) -> Answer {
    let call = async {
        let response = router
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|e| match e {});
        let (parts, body) = response.into_parts();
        let body = http_body_util::Limited::new(body, MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map(|c| c.to_bytes().to_vec())
            .unwrap_or_default();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
        Ok(answer) => answer,
        Err(_) => panic!("request did not finish in {REQUEST_TIMEOUT:?}: {what}"),
    }
}

fn plain_get(path: &[u8], range: Option<String>) -> Spec {
    Spec {
        mode: Mode::Signed,
        method: b"GET".to_vec(),
        path: path.to_vec(),
        query: Vec::new(),
        headers: range
            .map(|r| vec![(b"range".to_vec(), r.into_bytes())])
            .unwrap_or_default(),
        body: Vec::new(),
        explicit_length: false,
    }
}

/// Every `<open>..</close>` value in an XML body, in order.
fn xml_values<'a>(mut body: &'a [u8], open: &[u8], close: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    while let Some((_, rest)) = split_once(body, open) {
        let Some((value, more)) = split_once(rest, close) else {
            break;
        };
        out.push(value);
        body = more;
    }
    out
}

/// A listing names each key and each common prefix once, in ascending
/// order (S3 semantics; clients paginate on it).
fn check_listing(what: &str, body: &[u8]) {
    if !body.starts_with(b"<?xml") || !body.windows(16).any(|w| w == b"<ListBucketResul") {
        return;
    }
    // s3s writes a Contents' fields in name order (ETag before Key).
    let keys: Vec<&[u8]> = xml_values(body, b"<Contents>", b"</Contents>")
        .into_iter()
        .filter_map(|c| xml_values(c, b"<Key>", b"</Key>").first().copied())
        .collect();
    let prefixes = xml_values(body, b"<CommonPrefixes><Prefix>", b"</Prefix>");
    // Escaped (XML) or url-encoded values do not sort like the keys they
    // name; duplicates are duplicates either way.
    let ordered = !body.windows(24).any(|w| w == b"<EncodingType>url</Encod");
    for (name, list) in [("keys", &keys), ("common prefixes", &prefixes)] {
        for pair in list.windows(2) {
            let plain = ordered && !pair[0].contains(&b'&') && !pair[1].contains(&b'&');
            assert!(
                pair[0] != pair[1] && (!plain || pair[0] < pair[1]),
                "{what}: {name} not strictly ascending: {:?} then {:?}",
                String::from_utf8_lossy(pair[0]),
                String::from_utf8_lossy(pair[1])
            );
        }
    }
}

/// A signed, plain PutObject (no copy, no multipart, no aws-chunked).
fn is_plain_put(spec: &Spec) -> bool {
    spec.method == b"PUT"
        && matches!(spec.mode, Mode::Signed | Mode::Unsigned)
        && !spec.explicit_length
        && spec.query.is_empty()
        && spec
            .path
            .iter()
            .skip(1)
            .position(|&b| b == b'/')
            .is_some_and(|i| i + 2 < spec.path.len())
        && !spec.headers.iter().any(|(n, _)| {
            n.starts_with(b"x-amz-copy-source")
                || n == b"content-encoding"
                || n.starts_with(b"x-amz-decoded")
        })
}

// ---------------------------------------------------------------- the store

/// The device image with bucket `bkt` and its objects, and the state
/// recovery rebuilt from it once. Each input starts a store from a copy of
/// both: recovery scans every used segment to its end, which would cost
/// more than the requests (recovery has its own target).
struct Template {
    image: Vec<u8>,
    superblock: lsm::format::Superblock,
    index: lsm::Index,
    space: lsm::SpaceMap,
    start: lsm::WriterStart,
    checkpoint_tail: Option<lsm::LogPosition>,
}

fn router_for(store: &lsm::Store) -> axum::Router {
    let state = s3api::AppState::new("us-east-1");
    let _ = state.store.set(store.clone());
    let keyring = std::sync::Arc::new(s3api::Keyring::new(
        state.store.clone(),
        ACCESS_KEY.into(),
        SECRET_KEY.into(),
        None,
    ));
    s3api::router(state, keyring, &limits())
}

/// Opens a store on `image` through recovery (template setup only).
fn open(image: Vec<u8>) -> (lsm::Store, axum::Router) {
    let device: Arc<dyn BlockDevice> =
        Arc::new(FaultyDevice::from_image(image, FaultConfig::default()));
    let (store, _) = recovery::open(
        device,
        recovery::OpenOptions {
            store: store_config(),
            ignore_checkpoint: false,
        },
    )
    .expect("the template image recovers");
    let router = router_for(&store);
    (store, router)
}

/// A store on a fresh copy of the template, started on the recovered state.
fn start(t: &Template) -> (lsm::Store, axum::Router) {
    let device: Arc<dyn BlockDevice> = Arc::new(FaultyDevice::from_image(
        t.image.clone(),
        FaultConfig::default(),
    ));
    let catalog = lsm::Catalog {
        index: t.index.clone(),
        space: t.space.clone(),
    };
    let store = lsm::Store::start(
        device,
        t.superblock.clone(),
        catalog,
        t.start.clone(),
        t.checkpoint_tail,
        store_config(),
    );
    let router = router_for(&store);
    (store, router)
}

fn template() -> &'static Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| {
        let device = FaultyDevice::new(DEVICE_BYTES, FaultConfig::default());
        lsm::format_device(&device, SEGMENT_BYTES).expect("format");
        let (store, router) = open(device.visible_image());
        let big: Vec<u8> = (0..150_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let setup = [
            ("PUT", &b"/bkt"[..], Vec::new()),
            ("PUT", &b"/bkt/k"[..], b"hello strata".to_vec()),
            ("PUT", &b"/bkt/big"[..], big),
        ];
        runtime().block_on(async {
            for (method, path, body) in setup {
                let spec = Spec {
                    mode: Mode::Signed,
                    method: method.as_bytes().to_vec(),
                    path: path.to_vec(),
                    query: Vec::new(),
                    headers: Vec::new(),
                    body,
                    explicit_length: false,
                };
                let request = build(&spec).expect("setup request");
                let answer = send(&router, request, "setup").await;
                assert_eq!(
                    answer.status,
                    StatusCode::OK,
                    "setup {method} {}: {}",
                    String::from_utf8_lossy(path),
                    String::from_utf8_lossy(&answer.body)
                );
            }
        });
        store.shutdown();
        let device = store.device().clone();
        drop(store);
        // The store is shut down and synced: read its image back through
        // the device interface, and recover it once.
        let size = device.size_bytes() as usize;
        let image = device
            .read_at(blockdev::AlignedBuf::zeroed(size), 0)
            .expect("read the template image")
            .to_vec();
        let recovered = recovery::rebuild(device.as_ref(), false).expect("recover the template");
        Template {
            image,
            superblock: recovered.superblock,
            index: recovered.catalog.index,
            space: recovered.catalog.space,
            start: recovered.start,
            checkpoint_tail: recovered.checkpoint_tail,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let t = template();
    let mut specs = Vec::new();
    let mut rest = data;
    while specs.len() < MAX_REQUESTS && !rest.is_empty() {
        let (one, more) = split_once(rest, b"\n~~~\n").unwrap_or((rest, b""));
        specs.extend(parse(one));
        rest = more;
    }
    if specs.is_empty() {
        return;
    }
    let (store, router) = start(t);
    let mut vars = Vars {
        upload_id: Vec::new(),
        etags: Vec::new(),
    };
    runtime().block_on(async {
        for mut spec in specs {
            spec.path = vars.apply(&spec.path);
            for (n, v) in spec.query.iter_mut() {
                *n = vars.apply(n);
                *v = vars.apply(v);
            }
            for (_, v) in spec.headers.iter_mut() {
                *v = vars.apply(v);
            }
            spec.body = vars.apply(&spec.body);
            let Some(request) = build(&spec) else {
                continue;
            };
            let what = format!("{} {}", request.method(), request.uri());
            let answer = send(&router, request, &what).await;
            if debug() {
                eprintln!(
                    "{what} -> {} {}",
                    answer.status,
                    String::from_utf8_lossy(&answer.body[..answer.body.len().min(400)])
                );
            }
            assert_ne!(
                answer.status,
                StatusCode::INTERNAL_SERVER_ERROR,
                "500 for {what}: {}",
                String::from_utf8_lossy(&answer.body)
            );
            vars.learn(&answer.headers, &answer.body);
            if answer.status == StatusCode::OK {
                check_listing(&what, &answer.body);
            }

            if answer.status == StatusCode::OK && is_plain_put(&spec) {
                // What a 200 PUT stored reads back identically.
                let get = build(&plain_get(&spec.path, None)).expect("GET request");
                let got = send(&router, get, "read-back").await;
                assert_eq!(got.status, StatusCode::OK, "read-back of {what}");
                assert!(
                    got.body == spec.body,
                    "read-back of {what} differs ({} vs {} bytes)",
                    got.body.len(),
                    spec.body.len()
                );
                if spec.body.len() > 1 {
                    let h = sha256(&spec.body);
                    let len = spec.body.len() as u64;
                    let a = u64::from_le_bytes(h[..8].try_into().unwrap_or([0; 8])) % len;
                    let b =
                        a + u64::from_le_bytes(h[8..16].try_into().unwrap_or([0; 8])) % (len - a);
                    let get = build(&plain_get(&spec.path, Some(format!("bytes={a}-{b}"))))
                        .expect("range GET request");
                    let got = send(&router, get, "range read-back").await;
                    assert_eq!(
                        got.status,
                        StatusCode::PARTIAL_CONTENT,
                        "range {a}-{b} of {what}"
                    );
                    assert!(
                        got.body == spec.body[a as usize..=b as usize],
                        "range {a}-{b} of {what} differs"
                    );
                }
            }
        }
    });
    store.shutdown();
});
