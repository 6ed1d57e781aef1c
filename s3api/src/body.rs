//! Request and response bodies. Uploads stream into the store chunk by
//! chunk while MD5 and any requested checksums are computed once; nothing is
//! committed until the body ended cleanly and every digest matched. Downloads
//! stream chunk by chunk from blocking device reads, reading only the chunks
//! a range covers.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use lsm::cipher::DataKey;
use lsm::{ChunkRef, ObjectEntry, Store, WrittenData};
use md5::{Digest, Md5};
use s3s::checksum::ChecksumHasher;
use s3s::crypto::Checksum as _;
use s3s::dto::{ChecksumAlgorithm, StreamingBlob};
use s3s::stream::{ByteStream, RemainingLength};
use s3s::{s3_error, S3Error, S3ErrorCode, S3Result};

use crate::errors::{md5_failed, to_s3};

/// S3's single-PUT limit; larger objects go multipart.
pub(crate) const MAX_PUT_BYTES: u64 = 5 << 30;

/// The checksums a client asked for or sent, as S3 algorithm names.
pub(crate) struct ChecksumRequest {
    pub content_md5: Option<String>,
    /// (algorithm, expected base64 value if sent as a header)
    pub wanted: Vec<(&'static str, Option<String>)>,
    pub trailers: Option<s3s::TrailingHeaders>,
}

pub(crate) const ALGORITHMS: [&str; 5] = ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"];

/// The checksum values an S3 input carries, in `ALGORITHMS` order.
macro_rules! sent_checksums {
    ($input:expr) => {
        [
            $input.checksum_crc32.clone(),
            $input.checksum_crc32c.clone(),
            $input.checksum_crc64nvme.clone(),
            $input.checksum_sha1.clone(),
            $input.checksum_sha256.clone(),
        ]
    };
}
pub(crate) use sent_checksums;

/// Streams an upload input's body (PutObject, UploadPart) into the store
/// with every digest it names checked; see `ingest`.
macro_rules! ingest_upload {
    ($store:expr, $input:expr, $trailers:expr, $stall:expr, $key:expr) => {
        $crate::body::ingest(
            $store,
            $key,
            $input.body.take(),
            $input.content_length,
            $crate::body::ChecksumRequest::new(
                $input.content_md5.clone(),
                $input.checksum_algorithm.as_ref(),
                $crate::body::sent_checksums!($input),
                $trailers,
            ),
            $crate::body::MAX_PUT_BYTES,
            $stall,
        )
    };
}
pub(crate) use ingest_upload;

/// Sets an S3 output's checksum fields from stored (algorithm, value) pairs.
macro_rules! fill_checksums {
    ($output:expr, $checksums:expr) => {
        for (name, value) in $checksums {
            let slot = match name.as_str() {
                "CRC32" => &mut $output.checksum_crc32,
                "CRC32C" => &mut $output.checksum_crc32c,
                "CRC64NVME" => &mut $output.checksum_crc64nvme,
                "SHA1" => &mut $output.checksum_sha1,
                _ => &mut $output.checksum_sha256,
            };
            *slot = Some(value);
        }
    };
}
pub(crate) use fill_checksums;

impl ChecksumRequest {
    pub fn new(
        content_md5: Option<String>,
        algorithm: Option<&ChecksumAlgorithm>,
        sent: [Option<String>; 5],
        trailers: Option<s3s::TrailingHeaders>,
    ) -> Self {
        let mut wanted = Vec::new();
        for (name, value) in ALGORITHMS.iter().zip(sent) {
            let asked = algorithm.is_some_and(|a| a.as_str().eq_ignore_ascii_case(name));
            if asked || value.is_some() {
                wanted.push((*name, value));
            }
        }
        ChecksumRequest {
            content_md5,
            wanted,
            trailers,
        }
    }

    fn hasher(&self) -> ChecksumHasher {
        let mut h = ChecksumHasher::default();
        for (name, _) in &self.wanted {
            match *name {
                "CRC32" => h.crc32 = Some(s3s::crypto::Crc32::new()),
                "CRC32C" => h.crc32c = Some(s3s::crypto::Crc32c::new()),
                "CRC64NVME" => h.crc64nvme = Some(s3s::crypto::Crc64Nvme::new()),
                "SHA1" => h.sha1 = Some(s3s::crypto::Sha1::new()),
                _ => h.sha256 = Some(s3s::crypto::Sha256::new()),
            }
        }
        h
    }
}

fn body_error(e: &s3s::StdError) -> S3Error {
    let message = e.to_string();
    if message.contains("Sha256Mismatch") {
        let mut x = S3Error::with_message(
            S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        );
        x.set_status_code(axum::http::StatusCode::BAD_REQUEST);
        x
    } else if message.contains("SignatureMismatch") {
        s3_error!(SignatureDoesNotMatch)
    } else {
        s3_error!(
            IncompleteBody,
            "the request body ended early or was malformed"
        )
    }
}

/// Bodies from this size up have their MD5 computed on the lanes thread
/// (md5lanes), in step with other uploads and beside this one's other
/// work; smaller ones here, where the hand-off would cost more than it
/// saves.
const LANES_FROM_BYTES: i64 = 256 << 10;

/// The MD5 that becomes a body's ETag.
enum EtagHasher {
    Here(Md5),
    Lanes(md5lanes::Md5Stream<'static>),
}

impl EtagHasher {
    fn new(declared_len: Option<i64>) -> EtagHasher {
        let small = declared_len.is_some_and(|n| n < LANES_FROM_BYTES);
        match md5lanes::shared().filter(|_| !small) {
            Some(lanes) => EtagHasher::Lanes(lanes.stream()),
            None => EtagHasher::Here(Md5::new()),
        }
    }

    async fn update(&mut self, piece: Bytes) -> S3Result<()> {
        match self {
            EtagHasher::Here(md5) => md5.update(&piece),
            EtagHasher::Lanes(stream) => stream.update(piece).await.map_err(md5_failed)?,
        }
        Ok(())
    }

    async fn finish(self) -> S3Result<[u8; 16]> {
        match self {
            EtagHasher::Here(md5) => Ok(md5.finalize().into()),
            EtagHasher::Lanes(stream) => stream.finish().await.map_err(md5_failed),
        }
    }
}

/// A body stored but not yet visible under any key.
pub(crate) struct Ingested {
    pub data: WrittenData,
    /// Hex MD5 of the body: the ETag S3 clients expect.
    pub md5_hex: String,
    /// Additional checksums to keep, as (algorithm, base64).
    pub checksums: Vec<(String, String)>,
}

/// Streams `body` into the store and checks every digest. A body that
/// sends nothing for `stall` fails with RequestTimeout; what it wrote is
/// never committed, so compaction takes it back like any failed upload.
pub(crate) async fn ingest(
    store: &Store,
    key: Option<Arc<DataKey>>,
    body: Option<StreamingBlob>,
    declared_len: Option<i64>,
    checks: ChecksumRequest,
    max_bytes: u64,
    stall: crate::service::BodyDeadline,
) -> S3Result<Ingested> {
    if declared_len.is_some_and(|n| n < 0 || n as u64 > max_bytes) {
        return Err(s3_error!(
            EntityTooLarge,
            "at most {max_bytes} bytes in one request"
        ));
    }
    let mut hasher = checks.hasher();
    let mut md5 = EtagHasher::new(declared_len);
    let mut writer = match key {
        Some(key) => store.object_writer().sealed_with(key),
        None => store.object_writer(),
    };
    if let Some(len) = declared_len {
        writer = writer.expecting(len as u64);
    }
    let mut received: u64 = 0;
    if let Some(mut body) = body {
        loop {
            let piece = match tokio::time::timeout(stall.stall, body.next()).await {
                Ok(Some(piece)) => piece.map_err(|e| body_error(&e))?,
                Ok(None) => break,
                Err(_) => {
                    stall.metrics.connection_timeout("body");
                    return Err(s3_error!(
                        RequestTimeout,
                        "Your socket connection to the server was not read from or written to within the timeout period."
                    ));
                }
            };
            received += piece.len() as u64;
            if received > max_bytes {
                return Err(s3_error!(
                    EntityTooLarge,
                    "at most {max_bytes} bytes in one request"
                ));
            }
            hasher.update(&piece);
            md5.update(piece.clone()).await?;
            writer.write(&piece).await.map_err(to_s3)?;
        }
    }
    if declared_len.is_some_and(|n| n as u64 != received) {
        return Err(s3_error!(IncompleteBody, "received {received} bytes"));
    }
    let written = writer.finish().await.map_err(to_s3)?;
    let md5 = md5.finish().await?;
    if let Some(sent) = &checks.content_md5 {
        let expected = base64::engine::general_purpose::STANDARD
            .decode(sent.trim())
            .map_err(|_| s3_error!(InvalidDigest))?;
        if expected.len() != 16 {
            return Err(s3_error!(InvalidDigest));
        }
        if expected != md5 {
            return Err(s3_error!(
                BadDigest,
                "the Content-MD5 you specified did not match what we received"
            ));
        }
    }
    let computed = hasher.finalize();
    let trailers = checks.trailers.as_ref().and_then(|t| t.take());
    let mut kept = Vec::new();
    for (name, sent) in &checks.wanted {
        let value = match *name {
            "CRC32" => computed.checksum_crc32.clone(),
            "CRC32C" => computed.checksum_crc32c.clone(),
            "CRC64NVME" => computed.checksum_crc64nvme.clone(),
            "SHA1" => computed.checksum_sha1.clone(),
            _ => computed.checksum_sha256.clone(),
        };
        let Some(value) = value else { continue };
        let header = format!("x-amz-checksum-{}", name.to_ascii_lowercase());
        let trailer = trailers
            .as_ref()
            .and_then(|t| t.get(&header))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if let Some(expected) = sent.clone().or(trailer) {
            if expected.trim() != value {
                return Err(s3_error!(
                    BadDigest,
                    "the {name} checksum you specified did not match what we received"
                ));
            }
        }
        kept.push((name.to_string(), value));
    }
    Ok(Ingested {
        data: written,
        md5_hex: hex::encode(md5),
        checksums: kept,
    })
}

/// The chunks that cover `range` of an object, with the part of each used.
pub(crate) fn chunks_for(
    entry: &ObjectEntry,
    range: std::ops::Range<u64>,
) -> Vec<(ChunkRef, usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0u64;
    for chunk in &entry.chunks {
        let end = at + chunk.raw_len as u64;
        if end > range.start && at < range.end {
            let from = range.start.saturating_sub(at) as usize;
            let to = (range.end.min(end) - at) as usize;
            out.push((*chunk, from, to));
        }
        at = end;
        if at >= range.end {
            break;
        }
    }
    out
}

/// A response body fed by a task that reads chunks off the executor.
struct ChunkBody {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    left: usize,
}

impl futures::Stream for ChunkBody {
    type Item = Result<Bytes, s3s::StdError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|item| {
            item.map(|r| {
                r.inspect(|b| self.left = self.left.saturating_sub(b.len()))
                    .map_err(Into::into)
            })
        })
    }
}

impl ByteStream for ChunkBody {
    fn remaining_length(&self) -> RemainingLength {
        RemainingLength::new_exact(self.left)
    }
}

/// Reads one piece of one chunk: from the cache, or on the blocking pool.
async fn read_piece(
    store: Store,
    chunk: ChunkRef,
    key: Option<Arc<DataKey>>,
    from: usize,
    to: usize,
) -> Result<Bytes, lsm::Error> {
    // A cache hit is served here: a trip through the blocking pool costs two
    // thread wake-ups, which dominated 4 KiB GETs.
    if let Some(hit) = store.cached_chunk(&chunk) {
        return Ok(hit.slice(from..to));
    }
    tokio::task::spawn_blocking(move || {
        Ok(store.read_chunk(&chunk, key.as_deref())?.slice(from..to))
    })
    .await
    .unwrap_or_else(|e| Err(lsm::Error::Failed(format!("read task failed: {e}"))))
}

/// The body for `range` of `entry`. The first chunk is read before the
/// response starts, so a damaged or unreadable object fails with an error
/// status instead of a truncated 200.
/// An encrypted object's chunks are opened with `key`, its data key.
pub(crate) async fn object_body(
    store: &Store,
    entry: &ObjectEntry,
    range: std::ops::Range<u64>,
    key: Option<Arc<DataKey>>,
) -> S3Result<StreamingBlob> {
    let len = (range.end - range.start) as usize;
    let mut pieces = chunks_for(entry, range).into_iter();
    let Some((chunk, from, to)) = pieces.next() else {
        return Ok(StreamingBlob::from(s3s::Body::from(Bytes::new())));
    };
    let first = read_piece(store.clone(), chunk, key.clone(), from, to)
        .await
        .map_err(to_s3)?;
    let rest: Vec<_> = pieces.collect();
    if rest.is_empty() {
        return Ok(StreamingBlob::from(s3s::Body::from(first)));
    }
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let store = store.clone();
    tokio::spawn(async move {
        if tx.send(Ok(first)).await.is_err() {
            return;
        }
        for (chunk, from, to) in rest {
            let piece = read_piece(store.clone(), chunk, key.clone(), from, to)
                .await
                .map_err(|e| std::io::Error::other(e.to_string()));
            let failed = piece.is_err();
            if tx.send(piece).await.is_err() || failed {
                return;
            }
        }
    });
    Ok(StreamingBlob::new(ChunkBody { rx, left: len }))
}
