//! Space benchmark: how many device bytes the same objects take in Strata
//! and as plain files, on vector-database-shaped data, with compression and
//! dedup on and off, plus space amplification under overwrites with
//! background-style compaction. Prints a table and one JSON line per
//! figure. Run through benches/footprint.sh (release build).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Directory for the device files and the plain-file copies.
    #[arg(long)]
    dir: PathBuf,
    /// Rows per Milvus segment (a 16 MiB insert buffer holds about 5,000).
    #[arg(long, default_value_t = 5000)]
    rows_per_segment: usize,
    /// Milvus segments written before its compaction merges them in pairs.
    #[arg(long, default_value_t = 16)]
    segments: usize,
    /// Rows deleted (dropped by the database's merge), per thousand.
    #[arg(long, default_value_t = 2)]
    deleted_per_mille: u64,
    #[arg(long, default_value_t = 64 << 20)]
    segment_size_bytes: u64,
    /// Average content-defined chunk sizes to compare.
    #[arg(long, value_delimiter = ',', default_value = "1048576")]
    chunk_sizes: Vec<usize>,
    #[arg(long, default_value_t = 1)]
    zstd_level: i32,
    /// Embeddings as computed at half precision (low 13 mantissa bits zero,
    /// as fp16/bf16 models emit them) instead of full float32 precision.
    #[arg(long)]
    half_precision_vectors: bool,
    /// Seconds of foreground requests per compaction phase.
    #[arg(long, default_value_t = 8.0)]
    latency_seconds: f64,
    /// Objects rewritten in the overwrite workload, per key.
    #[arg(long, default_value_t = 6)]
    overwrite_rounds: usize,
    /// Overwrites of each hot key in the hot/cold workload.
    #[arg(long, default_value_t = 24)]
    hot_rounds: usize,
    /// Run only these parts (space, overwrite, hot-cold, latency); all by
    /// default.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

struct Rng(u64);

impl Rng {
    /// Distinct seeds give distinct streams.
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// One row of a collection: row id, timestamp, primary key, a 768-dim
/// float32 embedding (roughly normal, full precision) and a JSON-ish text.
struct Rows {
    ids: Vec<i64>,
    vectors: Vec<f32>,
    texts: Vec<String>,
}

const DIM: usize = 768;
const WORDS: [&str; 16] = [
    "vector",
    "search",
    "milvus",
    "segment",
    "index",
    "query",
    "storage",
    "object",
    "recall",
    "latency",
    "embedding",
    "document",
    "title",
    "body",
    "cluster",
    "replica",
];

fn rows(first_id: i64, count: usize, seed: u64, half: bool) -> Rows {
    let mut rng = Rng::new(seed);
    let ids: Vec<i64> = (first_id..first_id + count as i64).collect();
    let mask = if half { !0x1fffu32 } else { !0 };
    let vectors = (0..count * DIM)
        .map(|_| {
            f32::from_bits(((rng.unit() + rng.unit() + rng.unit() - 1.5) * 0.06).to_bits() & mask)
        })
        .collect();
    let texts = ids
        .iter()
        .map(|id| {
            let words: Vec<&str> = (0..8).map(|_| WORDS[(rng.next() % 16) as usize]).collect();
            format!(
                "{{\"id\":{id},\"title\":\"{}\",\"tags\":[\"{}\",\"{}\"],\"score\":{:.3}}}",
                words[..5].join(" "),
                words[5],
                words[6],
                rng.unit()
            )
        })
        .collect();
    Rows {
        ids,
        vectors,
        texts,
    }
}

/// The binlogs of one segment: one object per field, columnar.
fn binlogs(prefix: &str, rows: &Rows) -> Vec<(String, Vec<u8>)> {
    let ints = |f: &dyn Fn(i64) -> i64| -> Vec<u8> {
        rows.ids
            .iter()
            .flat_map(|id| f(*id).to_le_bytes())
            .collect()
    };
    let vector: Vec<u8> = rows.vectors.iter().flat_map(|v| v.to_le_bytes()).collect();
    let text: Vec<u8> = rows
        .texts
        .iter()
        .flat_map(|t| {
            let mut b = (t.len() as u32).to_le_bytes().to_vec();
            b.extend_from_slice(t.as_bytes());
            b
        })
        .collect();
    vec![
        (format!("{prefix}/0/1"), ints(&|id| id)),
        (
            format!("{prefix}/1/1"),
            ints(&|id| 440_000_000_000 + id * 3),
        ),
        (format!("{prefix}/100/1"), ints(&|id| id * 7919)),
        (format!("{prefix}/101/1"), vector),
        (format!("{prefix}/102/1"), text),
    ]
}

fn keep_rows(rows: &Rows, deleted_per_mille: u64, seed: u64) -> Rows {
    let mut rng = Rng::new(seed);
    let keep: Vec<usize> = (0..rows.ids.len())
        .filter(|_| rng.next() % 1000 >= deleted_per_mille)
        .collect();
    Rows {
        ids: keep.iter().map(|&i| rows.ids[i]).collect(),
        vectors: keep
            .iter()
            .flat_map(|&i| rows.vectors[i * DIM..(i + 1) * DIM].iter().copied())
            .collect(),
        texts: keep.iter().map(|&i| rows.texts[i].clone()).collect(),
    }
}

fn concat(a: &Rows, b: &Rows) -> Rows {
    Rows {
        ids: a.ids.iter().chain(&b.ids).copied().collect(),
        vectors: a.vectors.iter().chain(&b.vectors).copied().collect(),
        texts: a.texts.iter().chain(&b.texts).cloned().collect(),
    }
}

/// A store on a fresh sparse file.
fn fresh_store(path: &Path, args: &Args, config: lsm::StoreConfig) -> lsm::Store {
    let _ = std::fs::remove_file(path);
    let device = blockdev::open_device(
        path,
        &blockdev::OpenOptions {
            create_size_bytes: Some(64 << 30),
            engine: None,
        },
    )
    .expect("open device");
    lsm::format_device(device.as_ref(), args.segment_size_bytes).expect("format");
    let (store, _) = recovery::open(
        device,
        recovery::OpenOptions {
            store: config,
            ignore_checkpoint: false,
        },
    )
    .expect("open store");
    store
}

async fn put(store: &lsm::Store, key: &str, data: &[u8]) {
    let mut writer = store.object_writer();
    for piece in data.chunks(1 << 20) {
        writer.write(piece).await.expect("write");
    }
    let written = writer.finish().await.expect("finish");
    store
        .put_object(
            "bench",
            key,
            Default::default(),
            written,
            lsm::Condition::Always,
        )
        .await
        .expect("put");
}

async fn read_all(store: &lsm::Store) -> u64 {
    let page = store
        .list_objects(
            "bench",
            &lsm::ListQuery {
                max_keys: usize::MAX,
                ..Default::default()
            },
        )
        .expect("list");
    let mut bytes = 0;
    for (_, entry) in page.objects {
        for chunk in &entry.chunks {
            let store = store.clone();
            let chunk = *chunk;
            bytes += tokio::task::spawn_blocking(move || store.read_chunk(&chunk, None))
                .await
                .expect("task")
                .expect("read")
                .len() as u64;
        }
    }
    bytes
}

/// What one workload measured on one configuration.
struct Outcome {
    logical_bytes: u64,
    device_bytes: u64,
    write_mb_s: f64,
    read_mb_s: f64,
}

/// Compacts until nothing is worth it, then reports the file's footprint.
async fn settle(store: &lsm::Store) -> u64 {
    let policy = lsm::CompactionPolicy {
        rate_bytes_per_s: None,
        ..Default::default()
    };
    store
        .compact_until(&policy, 1.0, |_| {})
        .await
        .expect("compact");
    store.stats().device_allocated_bytes.unwrap_or(0)
}

type Workload = Vec<Vec<(String, Option<Vec<u8>>)>>;

/// Runs phases of puts (Some) and deletes (None) on a fresh store.
async fn run(store: lsm::Store, phases: &Workload) -> Outcome {
    store.create_bucket("bench", false).await.expect("bucket");
    let mut written = 0u64;
    let mut write_seconds = 0.0;
    for phase in phases {
        let started = Instant::now();
        for (key, data) in phase {
            match data {
                Some(data) => {
                    put(&store, key, data).await;
                    written += data.len() as u64;
                }
                None => store
                    .delete(
                        "bench",
                        key,
                        lsm::VersionRef::Current,
                        false,
                        Default::default(),
                    )
                    .await
                    .map(drop)
                    .expect("delete"),
            }
        }
        write_seconds += started.elapsed().as_secs_f64();
    }
    let device_bytes = settle(&store).await;
    let logical_bytes = store.stats().logical_bytes;
    let started = Instant::now();
    let read = read_all(&store).await;
    let read_seconds = started.elapsed().as_secs_f64();
    store.shutdown();
    Outcome {
        logical_bytes,
        device_bytes,
        write_mb_s: written as f64 / 1e6 / write_seconds.max(1e-9),
        read_mb_s: read as f64 / 1e6 / read_seconds.max(1e-9),
    }
}

/// The bytes the final objects take as one plain file each.
fn plain_files_bytes(dir: &Path, phases: &Workload) -> u64 {
    let _ = std::fs::remove_dir_all(dir);
    let mut live: BTreeMap<&str, &[u8]> = BTreeMap::new();
    for phase in phases {
        for (key, data) in phase {
            match data {
                Some(d) => live.insert(key, d),
                None => live.remove(key.as_str()),
            };
        }
    }
    for (key, data) in &live {
        let path = dir.join(key);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, data).expect("write file");
    }
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let meta = entry.metadata().expect("metadata");
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.blocks() * 512;
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir);
    total
}

/// Milvus: insert binlogs, then its compaction merges segments in pairs
/// (dropping deleted rows) and deletes the originals.
fn milvus_workload(args: &Args) -> Workload {
    let segments: Vec<Rows> = (0..args.segments)
        .map(|s| {
            rows(
                (s * args.rows_per_segment) as i64,
                args.rows_per_segment,
                s as u64 + 1,
                args.half_precision_vectors,
            )
        })
        .collect();
    let prefix = |s: usize| format!("files/insert_log/1/2/{s}");
    let insert = segments
        .iter()
        .enumerate()
        .flat_map(|(s, r)| binlogs(&prefix(s), r))
        .map(|(k, v)| (k, Some(v)))
        .collect();
    let mut merge = Vec::new();
    for pair in 0..args.segments / 2 {
        let (a, b) = (&segments[2 * pair], &segments[2 * pair + 1]);
        let merged = keep_rows(&concat(a, b), args.deleted_per_mille, pair as u64 + 99);
        merge.extend(
            binlogs(&prefix(1000 + pair), &merged)
                .into_iter()
                .map(|(k, v)| (k, Some(v))),
        );
        for s in [2 * pair, 2 * pair + 1] {
            merge.extend(
                binlogs(&prefix(s), &segments[s])
                    .into_iter()
                    .map(|(k, _)| (k, None)),
            );
        }
    }
    vec![insert, merge]
}

/// The Milvus insert phase again, with 30% of the objects duplicates of
/// earlier ones (re-imported files, copies between collections).
fn duplicates_workload(args: &Args) -> Workload {
    let mut out: Vec<(String, Option<Vec<u8>>)> = Vec::new();
    let mut rng = Rng::new(77);
    let mut originals: Vec<Vec<u8>> = Vec::new();
    for s in 0..args.segments {
        let r = rows(
            (s * args.rows_per_segment) as i64,
            args.rows_per_segment,
            s as u64 + 1,
            args.half_precision_vectors,
        );
        for (k, v) in binlogs(&format!("dup/{s}"), &r) {
            if !originals.is_empty() && rng.next() % 10 < 3 {
                let copy = originals[(rng.next() % originals.len() as u64) as usize].clone();
                out.push((k, Some(copy)));
            } else {
                originals.push(v.clone());
                out.push((k, Some(v)));
            }
        }
    }
    vec![out]
}

/// JSON documents: the text column alone, as objects of about 4 MiB.
fn json_workload(args: &Args) -> Workload {
    let mut out = Vec::new();
    for s in 0..args.segments {
        let r = rows(
            (s * args.rows_per_segment) as i64,
            args.rows_per_segment,
            s as u64 + 500,
            false,
        );
        let text = binlogs(&format!("json/{s}"), &r)
            .pop()
            .expect("text column");
        out.push((text.0, Some(text.1)));
    }
    vec![out]
}

fn config(args: &Args, compress: bool, dedup: bool, chunk: usize) -> lsm::StoreConfig {
    lsm::StoreConfig {
        chunk_size_bytes: chunk,
        compression: lsm::Compression {
            zstd_level: compress.then_some(args.zstd_level),
            shuffle: true,
        },
        dedup,
        cache_bytes: 0,
        ..Default::default()
    }
}

fn report(name: &str, variant: &str, chunk: usize, plain: u64, o: &Outcome) {
    println!(
        "{{\"workload\":\"{name}\",\"variant\":\"{variant}\",\"chunk_bytes\":{chunk},\"logical_bytes\":{},\"strata_device_bytes\":{},\"plain_file_bytes\":{plain},\"strata_over_logical\":{:.3},\"strata_over_plain\":{:.3},\"write_mb_s\":{:.0},\"read_mb_s\":{:.0}}}",
        o.logical_bytes,
        o.device_bytes,
        o.device_bytes as f64 / o.logical_bytes.max(1) as f64,
        o.device_bytes as f64 / plain.max(1) as f64,
        o.write_mb_s,
        o.read_mb_s
    );
}

/// A round when the default triggers call for one, as the background
/// compactor would run it, without its rate limit (these workloads measure
/// space, not latency).
async fn compact_if_due(store: &lsm::Store) -> Option<lsm::RoundReport> {
    let goal = store.compaction_goal(&lsm::CompactionTriggers::default())?;
    let policy = lsm::CompactionPolicy {
        rate_bytes_per_s: None,
        ..Default::default()
    };
    Some(
        store
            .compact_round_reclaiming(&policy, goal)
            .await
            .expect("compact"),
    )
}

/// Overwrites a fixed key set again and again with compaction running as
/// the server's triggers decide; samples space amplification throughout.
async fn overwrite_amplification(store: lsm::Store, args: &Args) {
    store.create_bucket("bench", false).await.expect("bucket");
    let keys = 64;
    let mut rng = Rng::new(5);
    let mut worst_steady: f64 = 0.0;
    let mut samples = Vec::new();
    for round in 0..args.overwrite_rounds {
        for k in 0..keys {
            let mut data = vec![0u8; 8 << 20];
            data.iter_mut().for_each(|b| *b = rng.next() as u8);
            put(&store, &format!("k{k}"), &data).await;
            compact_if_due(&store).await;
            let amp = store.space_report().space_amplification;
            samples.push(amp);
            if round >= 1 {
                worst_steady = worst_steady.max(amp);
            }
        }
    }
    let settled = {
        let policy = lsm::CompactionPolicy {
            rate_bytes_per_s: None,
            ..Default::default()
        };
        store
            .compact_until(&policy, 1.0, |_| {})
            .await
            .expect("compact");
        store.space_report().space_amplification
    };
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    println!(
        "{{\"workload\":\"overwrite\",\"objects\":{keys},\"object_bytes\":{},\"rounds\":{},\"space_amp_worst_steady\":{worst_steady:.3},\"space_amp_mean\":{mean:.3},\"space_amp_settled\":{settled:.3}}}",
        8 << 20,
        args.overwrite_rounds
    );
    store.shutdown();
}

/// A skewed overwrite workload: 16 hot keys take every overwrite, 48 cold
/// keys are written once, interleaved with the first hot writes (three cold
/// to one hot). Compaction runs as the triggers decide. Reports the bytes
/// compaction copied per byte the clients wrote: cold data, once copied,
/// should sit with other cold data and not be copied again.
async fn hot_cold_write_amplification(store: lsm::Store, args: &Args) {
    const OBJECT: usize = 4 << 20;
    const HOT: usize = 16;
    store.create_bucket("bench", false).await.expect("bucket");
    let mut rng = Rng::new(11);
    let mut written = 0u64;
    let mut copied = 0u64;
    let mut rounds = 0;
    let mut samples = Vec::new();
    let fill = (0..4 * HOT).map(|k| match k % 4 {
        3 => format!("hot{}", k / 4),
        _ => format!("cold{k}"),
    });
    let overwrites = (0..args.hot_rounds * HOT).map(|k| format!("hot{}", k % HOT));
    for key in fill.collect::<Vec<_>>().into_iter().chain(overwrites) {
        let data: Vec<u8> = (0..OBJECT).map(|_| rng.next() as u8).collect();
        put(&store, &key, &data).await;
        written += OBJECT as u64;
        if let Some(round) = compact_if_due(&store).await {
            copied += round.bytes_copied;
            rounds += 1;
        }
        samples.push(store.space_report().space_amplification);
    }
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    println!(
        "{{\"workload\":\"hot-cold\",\"hot_keys\":{HOT},\"cold_keys\":{},\"object_bytes\":{OBJECT},\"bytes_written\":{written},\"bytes_copied\":{copied},\"compaction_rounds\":{rounds},\"copied_per_byte_written\":{:.3},\"space_amp_mean\":{mean:.3}}}",
        3 * HOT,
        copied as f64 / written as f64
    );
    store.shutdown();
}

/// Foreground latency while compaction copies: 4 KiB durable PUTs and
/// uncached 4 KiB GETs from one client, first with no compaction, then with
/// rounds running under a 32 MiB/s budget, the default one, and none. Before
/// each phase, enough half-live segments are made (8 MiB objects two to a
/// segment, every other one overwritten) to keep the default budget busy
/// for the whole window; the report says how long compaction actually ran.
async fn foreground_latency(store: lsm::Store, args: &Args) {
    store.create_bucket("bench", false).await.expect("bucket");
    let mut rng = Rng::new(9);
    let big = |rng: &mut Rng| -> Vec<u8> { (0..8 << 20).map(|_| rng.next() as u8).collect() };
    put(&store, "small", &[7u8; 4096]).await;
    let default_budget = lsm::CompactionPolicy::default().rate_bytes_per_s;
    // Live bytes to copy = half of what is written.
    let budget = default_budget.unwrap_or(128 << 20) as f64;
    let objects = ((args.latency_seconds * budget * 2.0) / (8 << 20) as f64).ceil() as usize;
    for (phase, rate) in [
        ("idle", None),
        ("compacting-32mib-s", Some(32 << 20)),
        ("compacting-default-budget", default_budget),
        ("compacting-unlimited", Some(0)),
    ] {
        if rate.is_some() {
            for round in 0..2 {
                for k in 0..objects {
                    if round == 0 || k % 2 == 0 {
                        put(&store, &format!("{phase}/big{k}"), &big(&mut rng)).await;
                    }
                }
            }
            // Cover the garbage with a checkpoint outside the window.
            store.checkpoint().await.expect("checkpoint");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let compactor = rate.map(|r| {
            let store = store.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let policy = lsm::CompactionPolicy {
                    max_live_ratio: 0.9,
                    rate_bytes_per_s: (r > 0).then_some(r),
                    ..Default::default()
                };
                let started = Instant::now();
                let mut copied = 0;
                while !stop.load(Ordering::Relaxed) {
                    let round = store.compact_round(&policy).await.expect("compact");
                    if round.victims.is_empty() {
                        break;
                    }
                    copied += round.bytes_copied;
                }
                (copied, started.elapsed().as_secs_f64())
            })
        });
        let mut puts = Vec::new();
        let mut gets = Vec::new();
        let started = Instant::now();
        let small = store.object("bench", "small").expect("small").chunks[0];
        while started.elapsed().as_secs_f64() < args.latency_seconds {
            let t = Instant::now();
            put(&store, "tiny", &rng.next().to_le_bytes().repeat(512)).await;
            puts.push(t.elapsed().as_micros() as u64);
            let t = Instant::now();
            let s = store.clone();
            tokio::task::spawn_blocking(move || s.read_chunk(&small, None))
                .await
                .expect("task")
                .expect("read");
            gets.push(t.elapsed().as_micros() as u64);
        }
        stop.store(true, Ordering::Relaxed);
        let (copied, compacting_s) = match compactor {
            Some(task) => task.await.expect("compactor"),
            None => (0, 0.0),
        };
        let pct = |v: &mut Vec<u64>, p: f64| {
            v.sort_unstable();
            v[((v.len() - 1) as f64 * p) as usize] as f64 / 1000.0
        };
        println!(
            "{{\"workload\":\"foreground-latency\",\"phase\":\"{phase}\",\"copy_budget_bytes_s\":{},\"bytes_copied\":{copied},\"compacting_s\":{compacting_s:.1},\"window_s\":{:.1},\"copy_mb_s\":{:.0},\"put_4k_p50_ms\":{:.2},\"put_4k_p99_ms\":{:.2},\"get_4k_p50_ms\":{:.2},\"get_4k_p99_ms\":{:.2}}}",
            rate.unwrap_or(0),
            args.latency_seconds,
            copied as f64 / 1e6 / compacting_s.max(1e-9),
            pct(&mut puts, 0.5),
            pct(&mut puts, 0.99),
            pct(&mut gets, 0.5),
            pct(&mut gets, 0.99),
        );
    }
    store.shutdown();
}

fn hash_speeds() {
    let data: Vec<u8> = {
        let mut rng = Rng::new(3);
        (0..256 << 20).map(|_| rng.next() as u8).collect()
    };
    let time = |f: &dyn Fn(&[u8])| {
        let started = Instant::now();
        for piece in data.chunks(1 << 20) {
            f(piece);
        }
        data.len() as f64 / 1e9 / started.elapsed().as_secs_f64()
    };
    let blake3 = time(&|p| {
        std::hint::black_box(blake3::hash(p));
    });
    let sha256 = time(&|p| {
        use sha2::Digest;
        std::hint::black_box(sha2::Sha256::digest(p));
    });
    println!("{{\"hash\":\"blake3\",\"gb_s\":{blake3:.2}}}\n{{\"hash\":\"sha256\",\"gb_s\":{sha256:.2}}}");
}

fn main() {
    let args = Args::parse();
    std::fs::create_dir_all(&args.dir).expect("work dir");
    let device = args.dir.join("footprint.img");
    let plain = args.dir.join("plain");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let runs = |part: &str| args.only.is_empty() || args.only.iter().any(|p| p == part);
    if runs("space") {
        hash_speeds();
    }
    let workloads: Vec<(&str, Workload)> = if runs("space") {
        vec![
            ("milvus", milvus_workload(&args)),
            ("milvus-30pct-duplicates", duplicates_workload(&args)),
            ("json", json_workload(&args)),
        ]
    } else {
        Vec::new()
    };
    for (name, phases) in &workloads {
        let plain_bytes = plain_files_bytes(&plain, phases);
        let default_chunk = args.chunk_sizes[0];
        let variants = [
            ("off", false, false),
            ("zstd", true, false),
            ("zstd+dedup", true, true),
        ];
        for (variant, compress, dedup) in variants {
            let store = fresh_store(
                &device,
                &args,
                config(&args, compress, dedup, default_chunk),
            );
            let outcome = rt.block_on(run(store, phases));
            report(name, variant, default_chunk, plain_bytes, &outcome);
        }
        for &chunk in &args.chunk_sizes[1..] {
            let store = fresh_store(&device, &args, config(&args, true, true, chunk));
            let outcome = rt.block_on(run(store, phases));
            report(name, "zstd+dedup", chunk, plain_bytes, &outcome);
        }
    }
    if runs("overwrite") {
        let store = fresh_store(&device, &args, config(&args, false, false, 1 << 20));
        rt.block_on(overwrite_amplification(store, &args));
    }
    if runs("hot-cold") {
        let store = fresh_store(&device, &args, config(&args, false, false, 1 << 20));
        rt.block_on(hot_cold_write_amplification(store, &args));
    }
    if runs("latency") {
        let store = fresh_store(&device, &args, config(&args, false, false, 1 << 20));
        rt.block_on(foreground_latency(store, &args));
    }
    let _ = std::fs::remove_file(&device);
}
