//! MD5 throughput on one core: md-5 (one message at a time) beside the
//! lanes thread with 1 to 16 messages at once, each fed in 64 KiB pieces as
//! uploads arrive. Prints MB/s of message bytes.
//!   cargo run --release -p strata-benches --bin md5rate [-- MIB_PER_STREAM]

use std::time::Instant;

use bytes::Bytes;
use md5::Digest;

const PIECE_BYTES: usize = 64 << 10;

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(256);
    let data = Bytes::from(
        (0..mib << 20)
            .map(|i| ((i * 2_654_435_761usize) >> 13) as u8)
            .collect::<Vec<u8>>(),
    );
    let start = Instant::now();
    let one: [u8; 16] = md5::Md5::digest(&data).into();
    report("md-5, one message", data.len(), start);
    let Some(lanes) = md5lanes::shared() else {
        println!("no AVX-512F here: no lanes");
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    for streams in [1usize, 2, 4, 8, 16] {
        let start = Instant::now();
        let digests = runtime.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..streams {
                let data = data.clone();
                tasks.spawn(async move {
                    let mut stream = lanes.stream();
                    for at in (0..data.len()).step_by(PIECE_BYTES) {
                        let end = (at + PIECE_BYTES).min(data.len());
                        stream.update(data.slice(at..end)).await.expect("lanes");
                        // Uploads arrive side by side, not one after another.
                        tokio::task::yield_now().await;
                    }
                    stream.finish().await.expect("lanes")
                });
            }
            tasks.join_all().await
        });
        assert!(
            digests.iter().all(|d| *d == one),
            "lanes disagree with md-5"
        );
        report(
            &format!("lanes, {streams} messages"),
            streams * data.len(),
            start,
        );
    }
}

fn report(what: &str, bytes: usize, start: Instant) {
    let secs = start.elapsed().as_secs_f64();
    println!("{what:>20}: {:>7.0} MB/s", bytes as f64 / secs / 1e6);
}
