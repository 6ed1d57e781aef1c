//! The lanes thread against md-5, with many streams at once.

use bytes::Bytes;
use md5::Digest;
use md5lanes::{Md5Lanes, QUEUED_BYTES_MAX};
use rand::{Rng, SeedableRng};

fn message(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.gen()).collect()
}

/// Feeds `data` in pieces of random sizes and returns the lanes' digest.
async fn hashed(lanes: &Md5Lanes, data: Vec<u8>, seed: u64) -> [u8; 16] {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let data = Bytes::from(data);
    let mut stream = lanes.stream();
    let mut at = 0;
    while at < data.len() {
        let n = rng.gen_range(1..=(data.len() - at).min(200_000));
        stream.update(data.slice(at..at + n)).await.unwrap();
        at += n;
        if rng.gen_bool(0.1) {
            tokio::task::yield_now().await;
        }
    }
    stream.finish().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_streams_at_once_each_get_their_own_md5() {
    let Some(lanes) = md5lanes::shared() else {
        eprintln!("no AVX-512F: nothing to test");
        return;
    };
    let mut tasks = Vec::new();
    for i in 0..40u64 {
        // Lengths around block and piece boundaries, and a few large.
        let len = match i % 5 {
            0 => 0,
            1 => 55 + i as usize,
            2 => 64 * i as usize,
            3 => 1_000_003,
            _ => 4_000_000 + i as usize,
        };
        tasks.push(tokio::spawn(async move {
            let data = message(i, len);
            let expected: [u8; 16] = md5::Md5::digest(&data).into();
            (hashed(lanes, data, i).await, expected)
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let (got, expected) = t.await.unwrap();
        assert_eq!(got, expected, "stream {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_streams_give_back_their_room() {
    let Some(lanes) = Md5Lanes::start() else {
        return;
    };
    // Twice the room, queued and abandoned: without the room back, the
    // last stream would wait for ever.
    for i in 0..8u64 {
        let mut stream = lanes.stream();
        stream
            .update(Bytes::from(message(i, QUEUED_BYTES_MAX / 4)))
            .await
            .unwrap();
        drop(stream);
    }
    // A piece larger than all the room waits for the queue to empty.
    let big = message(99, QUEUED_BYTES_MAX + 100);
    let expected: [u8; 16] = md5::Md5::digest(&big).into();
    let mut stream = lanes.stream();
    let got = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        stream.update(Bytes::from(big)).await.unwrap();
        stream.finish().await.unwrap()
    })
    .await
    .expect("the room came back");
    assert_eq!(got, expected);
}
