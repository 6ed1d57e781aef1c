//! S3 load generator for any endpoint (Strata, s3s-fs, MinIO; path-style):
//! put, get, mixed and list runs, and a replay of a vector database's object
//! traffic (milvus). Bodies are a function of (seed, object index), so every
//! GET can be checked byte for byte (--verify) without keeping them.
//! Prints a table row per run or phase on stderr and one JSON line on stdout;
//! benches/s3bench.sh runs it against Strata and a peer.

#[path = "s3load/body.rs"]
mod body;
#[path = "s3load/milvus.rs"]
mod milvus;
#[path = "s3load/ops.rs"]
mod ops;
#[path = "s3load/stats.rs"]
mod stats;
#[path = "s3load/streaming.rs"]
mod streaming;
#[path = "s3load/woodpecker.rs"]
mod woodpecker;

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use clap::{Parser, ValueEnum};

use body::{key_id, mix, Body, Payload, Rng};
use ops::{Ctx, Job};
use stats::{emit, RowInfo, Stats};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Signing {
    Sdk,
    MinioStreaming,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// PUTs of unique keys.
    Put,
    /// Prefill, then GETs of random prefilled objects.
    Get,
    /// Prefill, then 70% GETs of prefilled objects and 30% PUTs of new keys.
    Mixed,
    /// Prefill one prefix, then ListObjectsV2 pages (1000 keys) to its end.
    List,
    /// Insert, index, load and compaction phases of a vector database.
    Milvus,
    /// Milvus 2.6's write-ahead log: --concurrency logs appending fragments
    /// of up to --size bytes every 200 ms with If-None-Match: *, fences,
    /// tail reads and listings, for --duration-s.
    Woodpecker,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Put => "put",
            Mode::Get => "get",
            Mode::Mixed => "mixed",
            Mode::List => "list",
            Mode::Milvus => "milvus",
            Mode::Woodpecker => "woodpecker",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum RangeMode {
    /// Whole objects.
    Full,
    /// --range-size bytes at a random offset.
    Random,
}

#[derive(Parser, Debug)]
#[command(about = "S3 load generator: put, get, mixed, list and a Milvus-shaped replay")]
pub struct Args {
    /// S3 endpoint, e.g. http://127.0.0.1:9000 (path-style addressing).
    #[arg(long)]
    endpoint: String,
    #[arg(long, env = "AWS_ACCESS_KEY_ID", default_value = "minioadmin")]
    access_key: String,
    #[arg(
        long,
        env = "AWS_SECRET_ACCESS_KEY",
        default_value = "minioadmin",
        hide_env_values = true
    )]
    secret_key: String,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Created if missing.
    #[arg(long, default_value = "s3load")]
    bucket: String,
    #[arg(long, value_enum, default_value = "put")]
    mode: Mode,
    /// Operations in flight at once (one task each).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Length of a timed run; the default when --ops is not given is 10 s.
    #[arg(long, conflicts_with = "ops")]
    duration_s: Option<f64>,
    /// Number of operations instead of a duration.
    #[arg(long)]
    ops: Option<u64>,
    /// Object size in bytes; above 16 MiB PUTs are multipart (16 MiB parts).
    #[arg(long, default_value_t = 4096)]
    size: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, value_enum, default_value = "random")]
    payload: Payload,
    /// Fraction of PUT bodies that repeat an earlier body (0.0 to 1.0).
    #[arg(long, default_value_t = 0.0)]
    dup_ratio: f64,
    /// GETs of whole objects or of random ranges.
    #[arg(long, value_enum, default_value = "full")]
    range: RangeMode,
    /// Length of a random range, clipped to the object.
    #[arg(long, default_value_t = 16 << 20)]
    range_size: u64,
    /// Objects written before a get, mixed or list run; default
    /// min(256, max(concurrency, 1 GiB / size)) (list: 10000).
    #[arg(long)]
    prefill: Option<u64>,
    /// Compare every GET byte for byte with the body regenerated from
    /// seed and key.
    #[arg(long)]
    verify: bool,
    /// Turn off the SDK's default request checksums and response validation
    /// (both become "when required").
    #[arg(long)]
    no_checksums: bool,
    /// How PUT and UploadPart bodies are signed: by the SDK (its defaults:
    /// CRC32 trailers), or as minio-go signs them over HTTP (64 KiB
    /// aws-chunked chunks, each signed).
    #[arg(long, value_enum, default_value = "sdk")]
    signing: Signing,
    /// Attempts per request (1: no retries, so every failure is counted).
    #[arg(long, default_value_t = 1)]
    max_attempts: u32,
    /// Write 3 to /proc/sys/vm/drop_caches after writing and before reading
    /// (root, local benchmarks only), so a file-backed server reads its disk.
    #[arg(long)]
    drop_caches: bool,
    /// Printed in the JSON.
    #[arg(long, default_value = "")]
    label: String,
    /// Milvus: segments in the insert phase (compaction merges pairs).
    #[arg(long, default_value_t = 4)]
    milvus_segments: u64,
    /// Milvus: 16 MiB insert buffers flushed per segment (one binlog per
    /// field each).
    #[arg(long, default_value_t = 8)]
    milvus_buffers: u64,
    /// Milvus: 1 MiB ranged reads per index slice in the load phase.
    #[arg(long, default_value_t = 8)]
    milvus_ranges_per_slice: u64,
}

/// When a timed run stops: after a duration, or after a number of
/// operations (shared by all workers).
struct Plan {
    deadline: Instant,
    ops_budget: Option<u64>,
    issued: AtomicU64,
}

impl Plan {
    fn new(args: &Args) -> Plan {
        let duration = Duration::from_secs_f64(args.duration_s.unwrap_or(10.0).max(0.0));
        Plan {
            deadline: Instant::now() + duration,
            ops_budget: args.ops,
            issued: AtomicU64::new(0),
        }
    }

    /// Claims the next operation; false once the run is over.
    fn take(&self) -> bool {
        match self.ops_budget {
            Some(n) => self.issued.fetch_add(1, Ordering::Relaxed) < n,
            None => Instant::now() < self.deadline,
        }
    }
}

/// Where a run's objects live and what their bodies are.
struct Objects {
    /// Keys are `{prefix}/{index:010}`.
    prefix: String,
    payload: Payload,
    seed: u64,
    size: u64,
    dup_ratio: f64,
}

impl Objects {
    fn new(args: &Args) -> Objects {
        let mut prefix = format!(
            "s3load/{}-s{}-z{}-{}",
            args.mode.name(),
            args.seed,
            args.size,
            args.payload.name()
        );
        if args.dup_ratio > 0.0 {
            prefix.push_str(&format!("-d{}", args.dup_ratio));
        }
        if args.mode == Mode::List {
            prefix.push_str(&format!("-n{}", prefill(args)));
        }
        Objects {
            prefix,
            payload: args.payload,
            seed: args.seed,
            size: args.size,
            dup_ratio: args.dup_ratio,
        }
    }

    fn key(&self, index: u64) -> String {
        format!("{}/{index:010}", self.prefix)
    }

    /// The index whose fresh body object `index` carries: itself, or, for
    /// a fraction dup_ratio, (the source of) a random earlier one.
    fn source(&self, mut index: u64) -> u64 {
        while index > 0 {
            let mut rng = Rng::new(self.seed ^ mix(index ^ 0xd0b1e));
            if rng.unit() >= self.dup_ratio {
                break;
            }
            index = rng.below(index);
        }
        index
    }

    fn body(&self, index: u64) -> Body {
        Body::Gen {
            payload: self.payload,
            seed: self.seed,
            // The prefix keeps runs of other modes and sizes from sharing
            // bodies (which a deduplicating store would notice).
            id: key_id(&self.prefix) ^ mix(self.source(index)),
            len_bytes: self.size,
        }
    }

    fn put(&self, index: u64) -> Job {
        Job::Put {
            key: self.key(index),
            body: self.body(index),
        }
    }
}

fn prefill(args: &Args) -> u64 {
    args.prefill.unwrap_or(match args.mode {
        Mode::List => 10_000,
        _ => ((1u64 << 30) / args.size.max(1))
            .max(args.concurrency as u64)
            .min(256),
    })
}

/// The columns every row of this run shares.
pub struct Report<'a> {
    args: &'a Args,
}

impl Report<'_> {
    pub fn emit(&self, phase: &str, size_bytes: u64, stats: Stats, elapsed: Duration) {
        let info = RowInfo {
            label: &self.args.label,
            endpoint: &self.args.endpoint,
            mode: self.args.mode.name(),
            phase,
            concurrency: self.args.concurrency,
            size_bytes,
            // Milvus bodies follow their field types, not --payload.
            payload: match self.args.mode {
                Mode::Milvus => "milvus",
                _ => self.args.payload.name(),
            },
        };
        emit(&info, stats, elapsed);
    }

    pub fn concurrency(&self) -> usize {
        self.args.concurrency.max(1)
    }

    pub fn drop_caches(&self) {
        if self.args.drop_caches {
            drop_page_cache();
        }
    }
}

fn drop_page_cache() {
    let synced = std::process::Command::new("sync").status();
    if let Err(e) = synced.and_then(|_| std::fs::write("/proc/sys/vm/drop_caches", "3")) {
        eprintln!("warning: could not drop the page cache: {e}");
    }
}

async fn prefill_phase(ctx: &Arc<Ctx>, report: &Report<'_>, objects: &Objects, n: u64) {
    let jobs = (0..n).map(|i| objects.put(i)).collect();
    let start = Instant::now();
    let stats = ops::run_jobs(ctx, jobs, report.concurrency()).await;
    report.emit("prefill", objects.size, stats, start.elapsed());
    report.drop_caches();
}

/// A GET of a random prefilled object: whole, or a random range.
fn random_get(args: &Args, objects: &Objects, prefilled: u64, rng: &mut Rng) -> Job {
    let index = rng.below(prefilled.max(1));
    let range = match args.range {
        RangeMode::Full => None,
        RangeMode::Random => {
            let len = args.range_size.clamp(1, objects.size.max(1));
            Some((rng.below(objects.size - len + 1), len))
        }
    };
    Job::Get {
        key: objects.key(index),
        body: objects.body(index),
        range,
    }
}

/// A timed put, get or mixed run.
async fn timed(ctx: &Arc<Ctx>, args: &Arc<Args>, objects: &Arc<Objects>, prefilled: u64) -> Stats {
    let plan = Arc::new(Plan::new(args));
    // New keys of a mixed run come after the prefilled ones.
    let next_put = Arc::new(AtomicU64::new(prefilled));
    let workers = (0..args.concurrency.max(1))
        .map(|w| {
            let (ctx, args, objects) = (ctx.clone(), args.clone(), objects.clone());
            let (plan, next_put) = (plan.clone(), next_put.clone());
            tokio::spawn(async move {
                let mut rng = Rng::new(args.seed ^ mix(w as u64 + 1));
                let mut stats = Stats::default();
                while plan.take() {
                    let is_put = match args.mode {
                        Mode::Put => true,
                        Mode::Mixed => rng.unit() < 0.3,
                        _ => false,
                    };
                    let job = if is_put {
                        objects.put(next_put.fetch_add(1, Ordering::Relaxed))
                    } else {
                        random_get(&args, &objects, prefilled, &mut rng)
                    };
                    ops::run_job(&ctx, &job, &mut stats).await;
                }
                stats
            })
        })
        .collect();
    ops::join(workers).await
}

/// Full listings of the prefix until the run is over, each page one
/// operation; under --verify each complete listing must hold exactly the
/// prefilled keys, in order.
async fn list_run(ctx: &Arc<Ctx>, args: &Arc<Args>, prefix: String, expect: Vec<String>) -> Stats {
    let plan = Arc::new(Plan::new(args));
    let expect = Arc::new(expect);
    let prefix = Arc::new(prefix);
    let workers = (0..args.concurrency.max(1))
        .map(|_| {
            let (ctx, plan, expect, prefix) =
                (ctx.clone(), plan.clone(), expect.clone(), prefix.clone());
            tokio::spawn(async move {
                let mut stats = Stats::default();
                while plan.take() {
                    let listed = ops::list_all(&ctx, &prefix, &mut stats, || plan.take()).await;
                    if let (true, Some(keys)) = (ctx.verify, listed) {
                        if keys != *expect {
                            stats.errors += 1;
                            ctx.errors.note(&stats::OpError::new(
                                "ListObjectsV2 verify",
                                format!(
                                    "listed {} keys under {prefix}, expected the {} prefilled ones",
                                    keys.len(),
                                    expect.len()
                                ),
                            ));
                        }
                    }
                }
                stats
            })
        })
        .collect();
    ops::join(workers).await
}

fn client(args: &Args) -> aws_sdk_s3::Client {
    let mut config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(&args.endpoint)
        .region(Region::new(args.region.clone()))
        .credentials_provider(Credentials::new(
            &args.access_key,
            &args.secret_key,
            None,
            None,
            "s3load",
        ))
        .force_path_style(true)
        .retry_config(RetryConfig::standard().with_max_attempts(args.max_attempts.max(1)));
    if args.no_checksums {
        config = config
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    }
    aws_sdk_s3::Client::from_conf(config.build())
}

fn check(args: &Args) -> Result<(), String> {
    if !(0.0..=1.0).contains(&args.dup_ratio) {
        return Err("--dup-ratio must be within 0.0 and 1.0".into());
    }
    if args.size == 0 && args.mode != Mode::Milvus {
        return Err("--size must be at least 1".into());
    }
    if args.concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    if args.mode == Mode::Milvus && args.milvus_segments == 0 {
        return Err("--milvus-segments must be at least 1".into());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Arc::new(Args::parse());
    if let Err(e) = check(&args) {
        eprintln!("s3load: {e}");
        return ExitCode::from(2);
    }
    let streaming = match args.signing {
        Signing::Sdk => None,
        Signing::MinioStreaming => match streaming::StreamingSigner::new(
            &args.endpoint,
            &args.access_key,
            &args.secret_key,
            &args.region,
        ) {
            Ok(signer) => Some(signer),
            Err(e) => {
                eprintln!("s3load: --signing minio-streaming: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let ctx = Arc::new(Ctx {
        client: client(&args),
        streaming,
        bucket: args.bucket.clone(),
        verify: args.verify,
        errors: Default::default(),
    });
    if let Err(e) = ops::ensure_bucket(&ctx, &args.region).await {
        eprintln!("s3load: bucket {}: {}: {}", args.bucket, e.kind, e.message);
        return ExitCode::from(1);
    }
    let report = Report { args: &args };
    let objects = Arc::new(Objects::new(&args));
    match args.mode {
        Mode::Put => {
            let start = Instant::now();
            let stats = timed(&ctx, &args, &objects, 0).await;
            report.emit("put", args.size, stats, start.elapsed());
        }
        Mode::Get | Mode::Mixed => {
            let n = prefill(&args).max(1);
            prefill_phase(&ctx, &report, &objects, n).await;
            let start = Instant::now();
            let stats = timed(&ctx, &args, &objects, n).await;
            report.emit(args.mode.name(), args.size, stats, start.elapsed());
        }
        Mode::List => {
            let n = prefill(&args);
            prefill_phase(&ctx, &report, &objects, n).await;
            let expect = (0..n).map(|i| objects.key(i)).collect();
            let start = Instant::now();
            let stats = list_run(&ctx, &args, format!("{}/", objects.prefix), expect).await;
            report.emit("list", 0, stats, start.elapsed());
        }
        Mode::Milvus => milvus::run(&ctx, &report, &milvus::Shape::new(&args)).await,
        Mode::Woodpecker => {
            let duration = Duration::from_secs_f64(args.duration_s.unwrap_or(10.0));
            woodpecker::run(
                &ctx,
                &report,
                report.concurrency(),
                args.size,
                args.seed,
                duration,
            )
            .await
        }
    }
    let errors = ctx.errors.summary();
    if !errors.is_empty() {
        eprintln!("errors by kind:");
        for (kind, n) in errors {
            eprintln!("  {n:>8}  {kind}");
        }
    }
    ExitCode::SUCCESS
}
