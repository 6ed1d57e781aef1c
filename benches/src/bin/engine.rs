//! Engine benchmark: the store without HTTP, on a file or a block device.
//! Puts and gets at several sizes and concurrencies, recovery scan speed,
//! restart time with and without a checkpoint, and index memory per object
//! (one version per key, and ten versions per key in a versioned bucket).
//! Prints one JSON line per measurement; benches/engine.sh adds fio's
//! figures for the same device and the ratios.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// File or block device to use (it is formatted).
    #[arg(long)]
    device: PathBuf,
    /// Size of the file to create if it does not exist.
    #[arg(long, default_value_t = 16 << 30)]
    size_bytes: u64,
    #[arg(long, default_value_t = 256 << 20)]
    segment_size_bytes: u64,
    /// Total bytes to write per (size, concurrency) case.
    #[arg(long, default_value_t = 1 << 30)]
    bytes_per_case: u64,
    /// Objects for the restart/memory case.
    #[arg(long, default_value_t = 1_000_000)]
    restart_objects: u64,
    /// Which parts to run: put-get, recovery, restart, restart-versions.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "put-get,recovery,restart,restart-versions"
    )]
    cases: Vec<String>,
    /// Object sizes for put-get.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "4096,65536,1048576,67108864"
    )]
    sizes: Vec<usize>,
    /// Client counts for put-get.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    clients: Vec<usize>,
}

fn open(args: &Args, format: bool, whole_log: bool) -> (lsm::Store, recovery::RecoveryReport) {
    let options = blockdev::OpenOptions {
        create_size_bytes: Some(args.size_bytes),
        engine: None,
    };
    let device = blockdev::open_device(&args.device, &options).expect("open device");
    if format {
        lsm::format_device(device.as_ref(), args.segment_size_bytes).expect("format");
    }
    let config = lsm::StoreConfig {
        cache_bytes: 0,
        compression: lsm::Compression {
            zstd_level: None,
            shuffle: false,
        },
        // Every put reuses one body: dedup would store it once and measure
        // nothing. The space benchmark (footprint) measures dedup.
        dedup: false,
        ..Default::default()
    };
    recovery::open(
        device,
        recovery::OpenOptions {
            store: config,
            ignore_checkpoint: whole_log,
        },
    )
    .expect("recover")
}

/// Random bytes (xorshift): incompressible, so the device does the work.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

async fn put_case(store: &lsm::Store, size: usize, clients: usize, total: u64) -> (f64, u64) {
    let count = (total / size as u64).max(clients as u64);
    let per_client = count / clients as u64;
    let body = Arc::new(payload(size, 7));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let store = store.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_client {
                let mut w = store.object_writer();
                for piece in body.chunks(1 << 20) {
                    w.write(piece).await.expect("write");
                }
                let data = w.finish().await.expect("finish");
                store
                    .put_object(
                        "bench",
                        &format!("s{size}/c{c}/o{i}"),
                        Default::default(),
                        data,
                        lsm::Condition::Always,
                    )
                    .await
                    .expect("put");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    (started.elapsed().as_secs_f64(), per_client * clients as u64)
}

async fn get_case(store: &lsm::Store, size: usize, clients: usize, objects: u64) -> (f64, u64) {
    let per_client = objects / clients as u64;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let store = store.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            for i in 0..per_client {
                let entry = store
                    .object("bench", &format!("s{size}/c{c}/o{i}"))
                    .expect("object");
                for chunk in &entry.chunks {
                    store.read_chunk(chunk, None).expect("read");
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    (started.elapsed().as_secs_f64(), per_client * clients as u64)
}

fn report(case: &str, size: usize, clients: usize, seconds: f64, ops: u64) {
    let mb_s = ops as f64 * size as f64 / 1e6 / seconds;
    let ops_s = ops as f64 / seconds;
    println!(
        "{{\"case\":\"{case}\",\"size_bytes\":{size},\"clients\":{clients},\"ops\":{ops},\"seconds\":{seconds:.3},\"ops_per_s\":{ops_s:.1},\"mb_per_s\":{mb_s:.1}}}"
    );
}

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if args.cases.iter().any(|c| c == "put-get") {
        let (store, _) = open(&args, true, false);
        rt.block_on(store.create_bucket("bench", false))
            .expect("bucket");
        for &size in &args.sizes {
            for &clients in &args.clients {
                let total = if size == 4 << 10 {
                    args.bytes_per_case / 8
                } else {
                    args.bytes_per_case
                };
                let before = store.stats().writer;
                let (seconds, ops) = rt.block_on(put_case(&store, size, clients, total));
                report("put", size, clients, seconds, ops);
                let after = store.stats().writer;
                println!(
                    "{{\"case\":\"writer\",\"size_bytes\":{size},\"clients\":{clients},\"batches\":{},\"records\":{}}}",
                    after.batches - before.batches,
                    after.records - before.records
                );
                let (seconds, ops) = rt.block_on(get_case(&store, size, clients, ops));
                report("get", size, clients, seconds, ops);
            }
        }
        store.shutdown();
    }
    if args.cases.iter().any(|c| c == "recovery") {
        // The whole log, whether or not a background checkpoint covered
        // part of it during the puts: this measures the scan.
        let (_, r) = open(&args, false, true);
        println!(
            "{{\"case\":\"recovery_scan\",\"bytes\":{},\"seconds\":{:.3},\"mb_per_s\":{:.1},\"objects\":{},\"checkpoint\":{}}}",
            r.scan.bytes_scanned, r.seconds, r.scan_mb_per_s(), r.objects, r.checkpoint_used
        );
    }
    if args.cases.iter().any(|c| c == "restart") {
        restart_case(&args, &rt, 1);
    }
    if args.cases.iter().any(|c| c == "restart-versions") {
        restart_case(&args, &rt, 10);
    }
}

/// `restart_objects` versions of empty objects from 64 writers,
/// `versions_per_key` of each key (a versioned bucket when more than one):
/// the index's memory per version, and the restart time with and without a
/// checkpoint.
fn restart_case(args: &Args, rt: &tokio::runtime::Runtime, versions_per_key: u64) {
    let (store, _) = open(args, true, false);
    rt.block_on(async {
        store.create_bucket("bench", false).await.expect("bucket");
        if versions_per_key > 1 {
            let enabled = lsm::BucketSetting::Versioning(lsm::VersioningState::Enabled);
            store
                .configure_bucket("bench", enabled)
                .await
                .expect("versioning");
        }
    });
    let rss_before = rss_bytes();
    let clients = 64u64;
    let per_client = args.restart_objects / clients;
    let started = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..clients {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..per_client {
                    let w = store.object_writer();
                    let data = w.finish().await.expect("finish");
                    // 40-byte keys, like Milvus's binlog paths' tails.
                    let key = format!("files/insert_log/{c:04}/{:019}", i / versions_per_key);
                    store
                        .put_object(
                            "bench",
                            &key,
                            Default::default(),
                            data,
                            lsm::Condition::Always,
                        )
                        .await
                        .expect("put");
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
    });
    let versions = per_client * clients;
    report(
        "put_empty_objects",
        0,
        clients as usize,
        started.elapsed().as_secs_f64(),
        versions,
    );
    let rss_after = rss_bytes();
    println!(
        "{{\"case\":\"index_memory\",\"versions\":{versions},\"versions_per_key\":{versions_per_key},\"key_bytes\":40,\"rss_delta_bytes\":{},\"bytes_per_version\":{:.0}}}",
        rss_after.saturating_sub(rss_before),
        rss_after.saturating_sub(rss_before) as f64 / versions as f64
    );
    store.shutdown();
    drop(store);
    let (store, r) = open(args, false, false);
    println!(
        "{{\"case\":\"restart_without_checkpoint\",\"versions_per_key\":{versions_per_key},\"objects\":{},\"seconds\":{:.3}}}",
        r.objects, r.seconds
    );
    rt.block_on(store.checkpoint()).expect("checkpoint");
    store.shutdown();
    drop(store);
    let (_, r) = open(args, false, false);
    println!(
        "{{\"case\":\"restart_with_checkpoint\",\"versions_per_key\":{versions_per_key},\"objects\":{},\"seconds\":{:.3},\"checkpoint\":{}}}",
        r.objects, r.seconds, r.checkpoint_used
    );
}
