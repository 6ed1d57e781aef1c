//! Crash torture: several clients PUT (single and multipart), overwrite and
//! DELETE their own keys against the real server, with small segments so
//! background compaction runs too, while it is killed with SIGKILL at a
//! random moment, again and again. After every restart each key holds exactly its
//! last acknowledged state, or the operation that was in flight at the kill;
//! nothing else. fsck must be clean after every kill, and after the final
//! graceful stop.
//! Short by default; STRATA_TORTURE_CYCLES=N runs the long form.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use common::Server;

fn client(server: &Server) -> aws_sdk_s3::Client {
    common::sdk_client(server)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// What a key may hold after a crash: its acknowledged state, and the
/// state the in-flight operation would have left.
#[derive(Default, Clone)]
struct KeyState {
    acked: Option<Vec<u8>>,
    in_flight: Option<Option<Vec<u8>>>,
}

async fn load(
    c: aws_sdk_s3::Client,
    worker: u64,
    seed: u64,
    mut keys: HashMap<String, KeyState>,
    stop: Arc<AtomicBool>,
) -> HashMap<String, KeyState> {
    let mut rng = Rng(seed | 1);
    for state in keys.values_mut() {
        state.in_flight = None;
    }
    // The SDK retries an operation the kill cut off, and the restarted
    // server may accept it: so workers stop on the flag, not only on errors.
    while !stop.load(Ordering::SeqCst) {
        let key = format!("w{worker}/k{}", rng.next() % 8);
        let state = keys.entry(key.clone()).or_default();
        let delete = rng.next().is_multiple_of(4);
        let multipart = !delete && rng.next().is_multiple_of(5);
        let next = if delete {
            None
        } else if multipart {
            Some(rng.bytes((5 << 20) + 70_000))
        } else {
            let len = [100usize, 5_000, 300_000, 1_500_000][(rng.next() % 4) as usize];
            Some(rng.bytes(len))
        };
        state.in_flight = Some(next.clone());
        let result = match &next {
            Some(body) if multipart => multipart_put(&c, &key, body).await,
            None => c
                .delete_object()
                .bucket("torture")
                .key(&key)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Some(body) => c
                .put_object()
                .bucket("torture")
                .key(&key)
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        };
        match result {
            Ok(()) => {
                state.acked = next;
                state.in_flight = None;
            }
            // The server is gone: this op's outcome is unknown.
            Err(_) => return keys,
        }
    }
    keys
}

/// A crash leaves at most a torn tail, which fsck accepts; anything else
/// it reports fails the test.
fn fsck_is_clean(server: &Server, when: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("fsck")
        .arg(server.data())
        .output()
        .expect("fsck");
    assert!(
        out.status.success(),
        "fsck {when}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A 5 MiB part and the rest, completed.
async fn multipart_put(c: &aws_sdk_s3::Client, key: &str, body: &[u8]) -> Result<(), String> {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let err = |e: &dyn std::fmt::Debug| format!("{e:?}");
    let upload = c
        .create_multipart_upload()
        .bucket("torture")
        .key(key)
        .send()
        .await
        .map_err(|e| err(&e))?;
    let id = upload.upload_id().unwrap_or_default().to_string();
    let mut parts = Vec::new();
    for (i, piece) in body.chunks(5 << 20).enumerate() {
        let number = i as i32 + 1;
        let done = c
            .upload_part()
            .bucket("torture")
            .key(key)
            .upload_id(&id)
            .part_number(number)
            .body(ByteStream::from(piece.to_vec()))
            .send()
            .await
            .map_err(|e| err(&e))?;
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(done.e_tag().map(str::to_string))
                .build(),
        );
    }
    c.complete_multipart_upload()
        .bucket("torture")
        .key(key)
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .map(|_| ())
        .map_err(|e| err(&e))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_torture_loses_nothing_acknowledged() {
    let cycles: u64 = std::env::var("STRATA_TORTURE_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let workers = 6u64;
    // Small segments and a fast compaction check: rounds run between kills.
    let mut server = Server::start_with(
        [
            "--size-bytes",
            "1073741824",
            "--segment-size-bytes",
            "4194304",
            "--compaction-interval-ms",
            "100",
        ]
        .map(String::from)
        .to_vec(),
        |_| Vec::new(),
    );
    client(&server)
        .create_bucket()
        .bucket("torture")
        .send()
        .await
        .expect("bucket");
    let mut states: Vec<HashMap<String, KeyState>> = vec![HashMap::new(); workers as usize];
    let mut rng = Rng(0x5EED);
    let mut operations = 0usize;
    for cycle in 0..cycles {
        let c = client(&server);
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..workers)
            .map(|w| {
                tokio::spawn(load(
                    c.clone(),
                    w,
                    rng.next(),
                    std::mem::take(&mut states[w as usize]),
                    stop.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300 + rng.next() % 1500)).await;
        stop.store(true, Ordering::SeqCst);
        server.kill();
        fsck_is_clean(&server, &format!("after SIGKILL {cycle}"));
        server.start_again();
        for (w, task) in tasks.into_iter().enumerate() {
            states[w] = task.await.expect("worker");
        }
        // Everything acknowledged is there; the in-flight op may or may not be.
        let c = client(&server);
        for state in &mut states {
            for (key, s) in state.iter_mut() {
                let got = match c.get_object().bucket("torture").key(key).send().await {
                    Ok(r) => Some(r.body.collect().await.expect("body").into_bytes().to_vec()),
                    Err(e) => {
                        let text = format!("{e:?}");
                        assert!(text.contains("NoSuchKey"), "cycle {cycle}, {key}: {text}");
                        None
                    }
                };
                operations += 1;
                let ok = got == s.acked || s.in_flight.as_ref().is_some_and(|f| *f == got);
                assert!(
                    ok,
                    "cycle {cycle}: {key} holds {:?} bytes; acknowledged {:?}, in flight {:?}",
                    got.as_ref().map(Vec::len),
                    s.acked.as_ref().map(Vec::len),
                    s.in_flight.as_ref().map(|f| f.as_ref().map(Vec::len))
                );
                // Whatever survived is now the acknowledged state.
                s.acked = got;
                s.in_flight = None;
            }
        }
    }
    assert_eq!(server.terminate(), Some(0));
    fsck_is_clean(&server, "after the graceful stop");
    let rounds = server.log().matches("compaction round").count();
    eprintln!(
        "torture: {cycles} SIGKILL cycles, {operations} keys verified, 0 lost; {rounds} compaction rounds logged since the last start"
    );
}
