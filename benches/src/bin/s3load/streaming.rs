//! PUT bodies signed as minio-go (Milvus's client) sends them over plain
//! HTTP: `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`, an aws-chunked body of
//! 64 KiB chunks, each signed with the signature of the one before. The
//! Rust SDK does not send this encoding; the server's cost of it (chunk
//! parsing and one SHA-256 and HMAC per chunk) is what this measures.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};

use crate::stats::OpError;

/// minio-go's chunk size for signed streaming.
const CHUNK_BYTES: usize = 64 << 10;
const STREAMING: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
/// SHA-256 of nothing: each chunk's string to sign carries it.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

pub struct StreamingSigner {
    addr: SocketAddr,
    /// host[:port], as the Host header and the signature carry it.
    authority: String,
    access_key: String,
    secret_key: String,
    region: String,
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// RFC 3986 percent-encoding as SigV4 wants it; `/` kept in paths.
fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// (YYYYMMDD'T'HHMMSS'Z', YYYYMMDD) for now, in UTC.
fn amz_date() -> (String, String) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Days since 1970-01-01 to a civil date (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let date = format!("{year:04}{month:02}{day:02}");
    let time = format!(
        "{date}T{:02}{:02}{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    );
    (time, date)
}

impl StreamingSigner {
    pub fn new(
        endpoint: &str,
        access_key: &str,
        secret_key: &str,
        region: &str,
    ) -> Result<StreamingSigner, String> {
        let authority = endpoint
            .strip_prefix("http://")
            .ok_or("signed streaming is for plain-HTTP endpoints (as minio-go uses it)")?
            .trim_end_matches('/')
            .to_string();
        let addr = authority
            .parse()
            .map_err(|e| format!("{authority}: {e} (an IP address and port)"))?;
        Ok(StreamingSigner {
            addr,
            authority,
            access_key: access_key.to_string(),
            secret_key: secret_key.to_string(),
            region: region.to_string(),
        })
    }

    /// PUTs `data` to /bucket/key?query (a part, with `query` set) and
    /// gives back the answer's ETag.
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        query: &[(&str, String)],
        data: &[u8],
    ) -> Result<String, OpError> {
        let fail = |m: String| OpError::new("streaming PUT", m);
        let (when, day) = amz_date();
        let scope = format!("{day}/{}/s3/aws4_request", self.region);
        // The signing key: the secret, then date, region, service, terminator.
        let mut k = hmac(
            format!("AWS4{}", self.secret_key).as_bytes(),
            day.as_bytes(),
        );
        for part in [self.region.as_str(), "s3", "aws4_request"] {
            k = hmac(&k, part.as_bytes());
        }
        let path = format!("/{}/{}", uri_encode(bucket, false), uri_encode(key, true));
        let mut pairs: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
            .collect();
        pairs.sort();
        let canonical_query = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");

        // The body's chunks first: the content length is signed.
        let mut body = Vec::with_capacity(data.len() + data.len() / CHUNK_BYTES * 100 + 200);
        let chunk_framing = |len: usize| format!("{len:x};chunk-signature=").len() + 64 + 4;
        let encoded_len: usize = data
            .chunks(CHUNK_BYTES)
            .map(|c| chunk_framing(c.len()) + c.len())
            .sum::<usize>()
            + chunk_framing(0);
        let headers = [
            ("content-encoding", "aws-chunked".to_string()),
            ("content-length", encoded_len.to_string()),
            ("host", self.authority.clone()),
            ("x-amz-content-sha256", STREAMING.to_string()),
            ("x-amz-date", when.clone()),
            ("x-amz-decoded-content-length", data.len().to_string()),
        ];
        let signed_headers = headers
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(";");
        let canonical_headers: String = headers
            .iter()
            .map(|(name, value)| format!("{name}:{value}\n"))
            .collect();
        let canonical = format!(
            "PUT\n{path}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{STREAMING}"
        );
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{when}\n{scope}\n{}",
            sha256_hex(canonical.as_bytes())
        );
        let seed = hex::encode(hmac(&k, to_sign.as_bytes()));
        let mut previous = seed.clone();
        for chunk in data.chunks(CHUNK_BYTES).chain(std::iter::once(&[][..])) {
            let to_sign = format!(
                "AWS4-HMAC-SHA256-PAYLOAD\n{when}\n{scope}\n{previous}\n{EMPTY_SHA256}\n{}",
                sha256_hex(chunk)
            );
            previous = hex::encode(hmac(&k, to_sign.as_bytes()));
            body.extend_from_slice(
                format!("{:x};chunk-signature={previous}\r\n", chunk.len()).as_bytes(),
            );
            body.extend_from_slice(chunk);
            body.extend_from_slice(b"\r\n");
        }
        debug_assert_eq!(body.len(), encoded_len);

        let target = match canonical_query.is_empty() {
            true => path,
            false => format!("{path}?{canonical_query}"),
        };
        let mut request = hyper::Request::builder().method("PUT").uri(target);
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        let request = request
            .header(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={seed}",
                    self.access_key
                ),
            )
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| fail(e.to_string()))?;
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|e| fail(format!("connect: {e}")))?;
        let (mut sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| fail(e.to_string()))?;
        tokio::spawn(connection);
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let status = response.status();
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let answer = response
            .into_body()
            .collect()
            .await
            .map_err(|e| fail(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            return Err(OpError::new(
                format!("streaming PUT {status}"),
                String::from_utf8_lossy(&answer).into_owned(),
            ));
        }
        Ok(etag)
    }
}
