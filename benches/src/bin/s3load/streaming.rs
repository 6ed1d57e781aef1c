//! PUT bodies signed as minio-go (Milvus's client) sends them over plain
//! HTTP: `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`, an aws-chunked body of
//! 64 KiB chunks, each signed with the signature of the one before. The
//! Rust SDK does not send this encoding; the server's cost of it (chunk
//! parsing and one SHA-256 and HMAC per chunk) is what this measures.

use std::net::SocketAddr;

use bytes::Bytes;
use console::sigv4::{amz_date, hmac, sha256_hex, signing_key, uri_encode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

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
        let when = amz_date(time::OffsetDateTime::now_utc());
        let day = &when[..8];
        let scope = format!("{day}/{}/s3/aws4_request", self.region);
        let k = signing_key(&self.secret_key, day, &self.region);
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
