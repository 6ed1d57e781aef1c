//! The S3 operations a run is made of (PUT, multipart PUT, GET with an
//! optional byte-for-byte check, one ListObjectsV2 page, DeleteObjects) and
//! a worker pool that runs a fixed list of them. Each returns its own
//! latency so body generation stays outside the timed part where it can.

use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CompletedMultipartUpload, CompletedPart, CreateBucketConfiguration,
    Delete, ObjectIdentifier,
};
use aws_sdk_s3::Client;

use crate::body::{Body, Checker};
use crate::stats::{Errors, OpError, Stats};
use crate::streaming::StreamingSigner;

/// Bodies above this go up as multipart uploads with parts of this size,
/// as minio-go (Milvus's client) does.
pub const PART_BYTES: u64 = 16 << 20;
/// DeleteObjects takes at most this many keys per request.
pub const DELETE_BATCH_KEYS: usize = 1000;

pub struct Ctx {
    pub client: Client,
    /// Bodies of PUTs and parts signed as minio-go streams them, if set.
    pub streaming: Option<StreamingSigner>,
    pub bucket: String,
    pub verify: bool,
    pub errors: Errors,
}

/// A successful operation: bytes moved (body bytes, or keys for a listing
/// or a delete count as zero) and its latency.
pub struct Done {
    pub bytes: u64,
    pub latency: Duration,
}

#[derive(Clone, Debug)]
pub enum Job {
    Put {
        key: String,
        body: Body,
    },
    /// `range` is (offset, length); None reads the whole object.
    Get {
        key: String,
        body: Body,
        range: Option<(u64, u64)>,
    },
    Delete {
        keys: Vec<String>,
    },
}

fn sdk_error<E, R>(op: &str, e: SdkError<E, R>) -> OpError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: Debug + Send + Sync + 'static,
{
    let kind = match &e {
        SdkError::ServiceError(s) => s.err().code().unwrap_or("service error").to_string(),
        SdkError::TimeoutError(_) => "timeout".to_string(),
        SdkError::DispatchFailure(_) => "dispatch failure".to_string(),
        SdkError::ResponseError(_) => "response error".to_string(),
        SdkError::ConstructionFailure(_) => "construction failure".to_string(),
        _ => "other".to_string(),
    };
    OpError::new(format!("{op} {kind}"), DisplayErrorContext(&e).to_string())
}

/// Creates the bucket unless it exists (ours already counts as existing).
pub async fn ensure_bucket(ctx: &Ctx, region: &str) -> Result<(), OpError> {
    if ctx
        .client
        .head_bucket()
        .bucket(&ctx.bucket)
        .send()
        .await
        .is_ok()
    {
        return Ok(());
    }
    let mut req = ctx.client.create_bucket().bucket(&ctx.bucket);
    if region != "us-east-1" {
        req = req.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region))
                .build(),
        );
    }
    match req.send().await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => Ok(()),
        Err(e) => Err(sdk_error("CreateBucket", e)),
    }
}

/// Generates a part off the async workers, so the next part is ready while
/// the current one is on the wire.
fn generate(body: &Body, offset: u64, len: u64) -> tokio::task::JoinHandle<Vec<u8>> {
    let body = body.clone();
    tokio::task::spawn_blocking(move || body.range(offset, len as usize))
}

pub async fn put(ctx: &Ctx, key: &str, body: &Body) -> Result<Done, OpError> {
    let len = body.len_bytes();
    if len <= PART_BYTES {
        let data = body.range(0, len as usize);
        let start = Instant::now();
        if let Some(signer) = &ctx.streaming {
            signer.put(&ctx.bucket, key, &[], &data).await?;
            return Ok(Done {
                bytes: len,
                latency: start.elapsed(),
            });
        }
        ctx.client
            .put_object()
            .bucket(&ctx.bucket)
            .key(key)
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| sdk_error("PutObject", e))?;
        return Ok(Done {
            bytes: len,
            latency: start.elapsed(),
        });
    }
    let parts = len.div_ceil(PART_BYTES);
    let part_len = |k: u64| PART_BYTES.min(len - k * PART_BYTES);
    let gen_error = |e: tokio::task::JoinError| OpError::new("generate part", e.to_string());
    let mut data = generate(body, 0, part_len(0)).await.map_err(gen_error)?;
    let start = Instant::now();
    let upload = ctx
        .client
        .create_multipart_upload()
        .bucket(&ctx.bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| sdk_error("CreateMultipartUpload", e))?;
    let upload_id = upload
        .upload_id()
        .ok_or_else(|| OpError::new("CreateMultipartUpload", "no upload id in the response"))?
        .to_string();
    let mut completed = Vec::with_capacity(parts as usize);
    let mut failure = None;
    for k in 0..parts {
        let next = (k + 1 < parts).then(|| generate(body, (k + 1) * PART_BYTES, part_len(k + 1)));
        let number = (k + 1) as i32;
        match upload_part(ctx, key, &upload_id, number, std::mem::take(&mut data)).await {
            Ok(etag) => completed.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(etag)
                    .build(),
            ),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
        if let Some(next) = next {
            data = next.await.map_err(gen_error)?;
        }
    }
    if failure.is_none() {
        let done = ctx
            .client
            .complete_multipart_upload()
            .bucket(&ctx.bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await;
        match done {
            Ok(_) => {
                return Ok(Done {
                    bytes: len,
                    latency: start.elapsed(),
                })
            }
            Err(e) => failure = Some(sdk_error("CompleteMultipartUpload", e)),
        }
    }
    // Best effort: the upload is already counted as failed.
    let _ = ctx
        .client
        .abort_multipart_upload()
        .bucket(&ctx.bucket)
        .key(key)
        .upload_id(&upload_id)
        .send()
        .await;
    Err(failure.unwrap_or_else(|| OpError::new("UploadPart", "failed")))
}

/// Uploads one part, signed by the SDK or as minio-go streams it; gives
/// back its ETag.
async fn upload_part(
    ctx: &Ctx,
    key: &str,
    upload_id: &str,
    number: i32,
    data: Vec<u8>,
) -> Result<Option<String>, OpError> {
    if let Some(signer) = &ctx.streaming {
        let query = [
            ("partNumber", number.to_string()),
            ("uploadId", upload_id.to_string()),
        ];
        return Ok(Some(signer.put(&ctx.bucket, key, &query, &data).await?));
    }
    let out = ctx
        .client
        .upload_part()
        .bucket(&ctx.bucket)
        .key(key)
        .upload_id(upload_id)
        .part_number(number)
        .body(ByteStream::from(data))
        .send()
        .await
        .map_err(|e| sdk_error("UploadPart", e))?;
    Ok(out.e_tag().map(str::to_string))
}

/// Reads the object (or the range), streaming; the length is always
/// checked, the bytes too under --verify.
pub async fn get(
    ctx: &Ctx,
    key: &str,
    body: &Body,
    range: Option<(u64, u64)>,
) -> Result<Done, OpError> {
    let (offset, expect) = range.unwrap_or((0, body.len_bytes()));
    let start = Instant::now();
    let mut req = ctx.client.get_object().bucket(&ctx.bucket).key(key);
    if let Some((off, len)) = range {
        req = req.range(format!("bytes={}-{}", off, off + len - 1));
    }
    let mut out = req.send().await.map_err(|e| sdk_error("GetObject", e))?;
    let mut checker = ctx.verify.then(|| Checker::new(body, offset, expect));
    let mut got = 0u64;
    while let Some(chunk) = out.body.next().await {
        let chunk = chunk
            .map_err(|e| OpError::new("GetObject body", DisplayErrorContext(&e).to_string()))?;
        got += chunk.len() as u64;
        if let Some(c) = checker.as_mut() {
            c.feed(&chunk)
                .map_err(|m| OpError::new("GetObject verify", format!("{key}: {m}")))?;
        }
    }
    if got != expect {
        return Err(OpError::new(
            "GetObject length",
            format!("{key}: got {got} bytes, expected {expect}"),
        ));
    }
    if let Some(c) = checker {
        c.finish()
            .map_err(|m| OpError::new("GetObject verify", format!("{key}: {m}")))?;
    }
    Ok(Done {
        bytes: got,
        latency: start.elapsed(),
    })
}

/// One ListObjectsV2 page of up to 1000 keys: its keys and the token of the
/// next page, if any.
pub async fn list_page(
    ctx: &Ctx,
    prefix: &str,
    token: Option<String>,
) -> Result<(Done, Vec<String>, Option<String>), OpError> {
    let start = Instant::now();
    let out = ctx
        .client
        .list_objects_v2()
        .bucket(&ctx.bucket)
        .prefix(prefix)
        .max_keys(1000)
        .set_continuation_token(token)
        .send()
        .await
        .map_err(|e| sdk_error("ListObjectsV2", e))?;
    let latency = start.elapsed();
    let keys: Vec<String> = out
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    let next = if out.is_truncated() == Some(true) {
        match out.next_continuation_token() {
            Some(t) => Some(t.to_string()),
            None => {
                return Err(OpError::new(
                    "ListObjectsV2",
                    "truncated page without a continuation token",
                ))
            }
        }
    } else {
        None
    };
    Ok((Done { bytes: 0, latency }, keys, next))
}

/// Every page of a listing; `on_page` sees each page's outcome (each page
/// is one operation). Returns all keys, or None if a page failed.
pub async fn list_all(
    ctx: &Ctx,
    prefix: &str,
    stats: &mut Stats,
    mut more: impl FnMut() -> bool,
) -> Option<Vec<String>> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        match list_page(ctx, prefix, token).await {
            Ok((done, page, next)) => {
                stats.record(done.latency, done.bytes);
                keys.extend(page);
                match next {
                    Some(t) if more() => token = Some(t),
                    Some(_) => return None,
                    None => return Some(keys),
                }
            }
            Err(e) => {
                stats.errors += 1;
                ctx.errors.note(&e);
                return None;
            }
        }
    }
}

pub async fn delete(ctx: &Ctx, keys: &[String]) -> Result<Done, OpError> {
    let objects = keys
        .iter()
        .map(|k| ObjectIdentifier::builder().key(k).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| OpError::new("DeleteObjects build", e.to_string()))?;
    let delete = Delete::builder()
        .set_objects(Some(objects))
        .quiet(true)
        .build()
        .map_err(|e| OpError::new("DeleteObjects build", e.to_string()))?;
    let start = Instant::now();
    let out = ctx
        .client
        .delete_objects()
        .bucket(&ctx.bucket)
        .delete(delete)
        .send()
        .await
        .map_err(|e| sdk_error("DeleteObjects", e))?;
    if let Some(first) = out.errors().first() {
        return Err(OpError::new(
            "DeleteObjects key",
            format!(
                "{} of {} keys failed, first {:?}: {:?} {:?}",
                out.errors().len(),
                keys.len(),
                first.key(),
                first.code(),
                first.message()
            ),
        ));
    }
    Ok(Done {
        bytes: 0,
        latency: start.elapsed(),
    })
}

/// Runs one job and records its outcome.
pub async fn run_job(ctx: &Ctx, job: &Job, stats: &mut Stats) {
    let result = match job {
        Job::Put { key, body } => put(ctx, key, body).await,
        Job::Get { key, body, range } => get(ctx, key, body, *range).await,
        Job::Delete { keys } => delete(ctx, keys).await,
    };
    match result {
        Ok(done) => stats.record(done.latency, done.bytes),
        Err(e) => {
            stats.errors += 1;
            ctx.errors.note(&e);
        }
    }
}

/// Runs every job once, `concurrency` at a time, in list order.
pub async fn run_jobs(ctx: &Arc<Ctx>, jobs: Vec<Job>, concurrency: usize) -> Stats {
    let jobs = Arc::new(jobs);
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (ctx, jobs, next) = (ctx.clone(), jobs.clone(), next.clone());
            tokio::spawn(async move {
                let mut stats = Stats::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    run_job(&ctx, job, &mut stats).await;
                }
                stats
            })
        })
        .collect();
    join(workers).await
}

/// Waits for the workers and merges what they measured.
pub async fn join(workers: Vec<tokio::task::JoinHandle<Stats>>) -> Stats {
    let mut total = Stats::default();
    for w in workers {
        match w.await {
            Ok(s) => total.merge(s),
            Err(e) => {
                eprintln!("worker failed: {e}");
                total.errors += 1;
            }
        }
    }
    total
}
