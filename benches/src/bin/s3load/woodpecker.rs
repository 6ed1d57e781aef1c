//! The object traffic of Milvus 2.6's write-ahead log (Woodpecker) on
//! object storage, which the pip build of Milvus does not have: many logs
//! (one per --concurrency), each appending a fragment object of up to
//! --size bytes every 200 ms, every one written with `If-None-Match: *`;
//! a fence object per log written the same way with user metadata, which a
//! second writer's attempt finds taken (412) and reads back with HEAD;
//! and readers tailing the logs with ranged GETs of the newest fragment and
//! listings by prefix with max-keys. Each kind is reported as its own
//! phase; the fragment PUTs' latency is what Milvus's writers wait for.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;

use crate::body::{mix, Body, Payload, Rng};
use crate::ops::Ctx;
use crate::stats::{OpError, Stats};
use crate::Report;

const APPEND_EVERY: Duration = Duration::from_millis(200);
/// A reader looks at the log's tail after every this many appends.
const TAIL_EVERY: u64 = 5;
const LIST_MAX_KEYS: i32 = 100;
const TAIL_RANGE_BYTES: u64 = 64 << 10;

#[derive(Default)]
struct LogStats {
    fragments: Stats,
    fences: Stats,
    tails: Stats,
    lists: Stats,
}

fn is_precondition_failed<E>(e: &aws_sdk_s3::error::SdkError<E>) -> bool
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    e.raw_response().is_some_and(|r| r.status().as_u16() == 412)
}

fn error_of<E: std::fmt::Debug>(op: &str, e: E) -> OpError {
    OpError::new(op.to_string(), format!("{e:?}"))
}

/// One log: its fence, then fragments every 200 ms until `until`.
async fn run_log(
    ctx: Arc<Ctx>,
    log: u64,
    seed: u64,
    max_bytes: u64,
    until: Instant,
) -> Result<LogStats, OpError> {
    let mut stats = LogStats::default();
    let prefix = format!("woodpecker/{seed:x}/log-{log:05}/");
    let fence = format!("{prefix}fence");
    let client = &ctx.client;
    // The writer takes the log: its fence must be new.
    let start = Instant::now();
    client
        .put_object()
        .bucket(&ctx.bucket)
        .key(&fence)
        .if_none_match("*")
        .metadata("writer", "first")
        .body(ByteStream::from_static(b"fence"))
        .send()
        .await
        .map_err(|e| error_of("fence PutObject", e))?;
    stats.fences.record(start.elapsed(), 5);
    // A second writer tries to take it, is refused, and reads who holds it.
    let start = Instant::now();
    match client
        .put_object()
        .bucket(&ctx.bucket)
        .key(&fence)
        .if_none_match("*")
        .metadata("writer", "second")
        .body(ByteStream::from_static(b"fence"))
        .send()
        .await
    {
        Err(e) if is_precondition_failed(&e) => {}
        Ok(_) => {
            return Err(OpError::new(
                "fence taken twice",
                format!("{fence}: a second If-None-Match: * PUT succeeded"),
            ))
        }
        Err(e) => return Err(error_of("fence PutObject", e)),
    }
    let head = client
        .head_object()
        .bucket(&ctx.bucket)
        .key(&fence)
        .send()
        .await
        .map_err(|e| error_of("fence HeadObject", e))?;
    let holder = head.metadata().and_then(|m| m.get("writer")).cloned();
    if holder.as_deref() != Some("first") {
        return Err(OpError::new(
            "fence holder",
            format!("{fence}: held by {holder:?}, not the first writer"),
        ));
    }
    stats.fences.record(start.elapsed(), 0);

    let mut rng = Rng::new(mix(seed ^ log));
    let mut next = Instant::now();
    let mut fragment = 0u64;
    while Instant::now() < until {
        tokio::time::sleep_until(next.into()).await;
        next += APPEND_EVERY;
        let len = 1 + rng.below(max_bytes.max(1));
        let body = Body::Gen {
            payload: Payload::Random,
            seed,
            id: mix(log << 32 | fragment),
            len_bytes: len,
        };
        let key = format!("{prefix}fragment-{fragment:010}");
        let data = body.range(0, len as usize);
        let start = Instant::now();
        client
            .put_object()
            .bucket(&ctx.bucket)
            .key(&key)
            .if_none_match("*")
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| error_of("fragment PutObject", e))?;
        stats.fragments.record(start.elapsed(), len);
        fragment += 1;
        if fragment.is_multiple_of(TAIL_EVERY) {
            // A reader tails the log: the newest fragment's last bytes, and
            // a listing of the log's objects.
            let from = len.saturating_sub(TAIL_RANGE_BYTES);
            let start = Instant::now();
            let got = client
                .get_object()
                .bucket(&ctx.bucket)
                .key(&key)
                .range(format!("bytes={from}-{}", len - 1))
                .send()
                .await
                .map_err(|e| error_of("tail GetObject", e))?;
            let bytes = got
                .body
                .collect()
                .await
                .map_err(|e| error_of("tail GetObject body", e))?
                .into_bytes();
            if bytes.as_ref() != body.range(from, (len - from) as usize).as_slice() {
                return Err(OpError::new("tail bytes", format!("{key}: differ")));
            }
            stats.tails.record(start.elapsed(), bytes.len() as u64);
            let start = Instant::now();
            let listed = client
                .list_objects_v2()
                .bucket(&ctx.bucket)
                .prefix(&prefix)
                .max_keys(LIST_MAX_KEYS)
                .send()
                .await
                .map_err(|e| error_of("ListObjectsV2", e))?;
            if listed.contents().is_empty() {
                return Err(OpError::new("list", format!("{prefix}: empty")));
            }
            stats.lists.record(start.elapsed(), 0);
        }
    }
    Ok(stats)
}

pub async fn run(
    ctx: &Arc<Ctx>,
    report: &Report<'_>,
    logs: usize,
    max_bytes: u64,
    seed: u64,
    duration: Duration,
) {
    let started = Instant::now();
    let until = started + duration;
    let workers: Vec<_> = (0..logs as u64)
        .map(|log| tokio::spawn(run_log(ctx.clone(), log, seed, max_bytes, until)))
        .collect();
    let mut all = LogStats::default();
    for worker in workers {
        match worker.await {
            Ok(Ok(stats)) => {
                all.fragments.merge(stats.fragments);
                all.fences.merge(stats.fences);
                all.tails.merge(stats.tails);
                all.lists.merge(stats.lists);
            }
            Ok(Err(e)) => {
                ctx.errors.note(&e);
                all.fragments.errors += 1;
            }
            Err(e) => {
                ctx.errors.note(&OpError::new("log task", e.to_string()));
                all.fragments.errors += 1;
            }
        }
    }
    let elapsed = started.elapsed();
    report.emit("fragment_put", max_bytes, all.fragments, elapsed);
    report.emit("fence", 5, all.fences, elapsed);
    report.emit("tail_get", TAIL_RANGE_BYTES, all.tails, elapsed);
    report.emit("list", 0, all.lists, elapsed);
}
