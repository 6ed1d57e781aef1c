//! The offline tools on real data files written by the real server: fsck
//! is clean after a graceful stop, refuses a file a server holds, finds and
//! names a flipped byte or a zeroed segment, and `--repair` quarantines what
//! is damaged while the rest keeps serving; `compact` gives space back, and
//! kill -9 at random points of it loses nothing; `inspect` shows segments
//! and dumps one object's records.

mod common;

use std::process::Command;

use aws_sdk_s3::primitives::ByteStream;
use common::Server;

fn strata(args: &[&str], data: &std::path::Path) -> (Option<i32>, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .arg(data)
        .output()
        .expect("run strata");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let json = serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null);
    (
        out.status.code(),
        json,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// `fsck --json`: exit code, the report, stderr.
fn fsck(data: &std::path::Path) -> (Option<i32>, serde_json::Value, String) {
    let (code, out, stderr) = strata(&["fsck", "--json"], data);
    (code, out["report"].clone(), stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsck_finds_a_flipped_byte_and_names_the_object() {
    let mut server = Server::start_with(
        vec![
            "--size-bytes".into(),
            (64u64 << 20).to_string(),
            "--segment-size-bytes".into(),
            (4u64 << 20).to_string(),
        ],
        |_| Vec::new(),
    );
    let c = common::sdk_client(&server);
    c.create_bucket()
        .bucket("fsck")
        .send()
        .await
        .expect("bucket");
    let large = common::random_bytes(7, 3 << 20);
    for (key, body) in [
        ("large", large.clone()),
        ("small", b"tiny object".to_vec()),
        ("medium", common::random_bytes(9, 200_000)),
    ] {
        c.put_object()
            .bucket("fsck")
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .expect("put");
    }

    let (code, _, stderr) = fsck(&server.data());
    assert_eq!(code, Some(2), "fsck must refuse a device a server holds");
    assert!(stderr.contains("in use"), "{stderr}");

    assert_eq!(server.terminate(), Some(0));
    let (code, report, stderr) = fsck(&server.data());
    assert_eq!(code, Some(0), "{report} {stderr}");
    assert_eq!(report["objects_checked"], 3);
    assert_eq!(report["checkpoint"], "agrees");
    // Not a terminal: plain progress lines, one per pass at least.
    assert!(
        stderr.contains("fsck: log: ") && stderr.contains("fsck: chunks: "),
        "{stderr}"
    );

    // Flip one byte inside the large object's stored data.
    let mut image = std::fs::read(server.data()).unwrap();
    let needle = &large[2_000_000..2_000_064];
    let at = image
        .windows(64)
        .position(|w| w == needle)
        .expect("object bytes on disk");
    image[at + 10] ^= 0x40;
    std::fs::write(server.data(), &image).unwrap();
    let (code, report, _) = fsck(&server.data());
    assert_eq!(code, Some(1), "{report}");
    let bad = report["unreadable_objects"].as_array().expect("list");
    assert_eq!(bad.len(), 1, "{report}");
    assert_eq!(bad[0]["key"], "large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_inspect_and_repair_of_a_zeroed_segment() {
    let mut server = Server::start_with(
        vec![
            "--size-bytes".into(),
            (96u64 << 20).to_string(),
            "--segment-size-bytes".into(),
            (1u64 << 20).to_string(),
        ],
        |_| Vec::new(),
    );
    let c = common::sdk_client(&server);
    c.create_bucket()
        .bucket("data")
        .send()
        .await
        .expect("bucket");
    let mut live = std::collections::BTreeMap::new();
    for round in 0..3u64 {
        for i in 0..40u64 {
            let key = format!("k{i:02}");
            if round == 2 && i % 4 != 0 {
                c.delete_object()
                    .bucket("data")
                    .key(&key)
                    .send()
                    .await
                    .expect("delete");
                live.remove(&key);
                continue;
            }
            let body = common::random_bytes(round * 100 + i, 200_000 + i as usize * 1000);
            c.put_object()
                .bucket("data")
                .key(&key)
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .expect("put");
            live.insert(key, body);
        }
    }
    assert_eq!(server.terminate(), Some(0));
    let data = server.data();

    let (code, _, stderr) = strata(&["inspect"], &data);
    assert_eq!(code, Some(0), "{stderr}");

    // kill -9 at random moments of offline compaction, then let it finish.
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(1)
        | 1;
    for _ in 0..4 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(["compact", "--json"])
            .arg(&data)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("compact");
        std::thread::sleep(std::time::Duration::from_millis(20 + x % 300));
        let _ = child.kill();
        let _ = child.wait();
        let (code, report, _) = fsck(&data);
        assert_eq!(code, Some(0), "fsck after kill -9 of compact: {report}");
    }
    let (code, compacted, stderr) =
        strata(&["compact", "--json", "--target-space-amp", "1.0"], &data);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("compact: reclaim: "), "{stderr}");
    // About 24 MB were written for about 2.3 MB that stay live.
    let amplification = compacted["after"]["space_amplification"]
        .as_f64()
        .expect("after");
    assert!(amplification < 2.0, "{compacted}");
    let (code, report, _) = fsck(&data);
    assert_eq!(code, Some(0), "{report}");

    // More writes after compaction: the newest checkpoint (written at the
    // graceful stop) lands in a later segment than the compacted data.
    server.start_again();
    let c = common::sdk_client(&server);
    for i in 0..20u64 {
        let key = format!("late{i:02}");
        let body = common::random_bytes(9000 + i, 250_000);
        c.put_object()
            .bucket("data")
            .key(&key)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .expect("put");
        live.insert(key, body);
    }
    assert_eq!(server.terminate(), Some(0));

    // Zero the whole segment that holds a chunk of one live object.
    let (code, dump, stderr) = strata(&["inspect", "--object", "data/k04"], &data);
    assert_eq!(code, Some(0), "{stderr}");
    let chunk = &dump["chunks"][0];
    let start = chunk["device_offset"].as_u64().expect("offset")
        - chunk["offset"].as_u64().expect("offset");
    let mut image = std::fs::read(&data).unwrap();
    image[start as usize..start as usize + (1 << 20)].fill(0);
    std::fs::write(&data, &image).unwrap();

    let (code, report, _) = fsck(&data);
    assert_eq!(code, Some(1), "{report}");
    let named: Vec<String> = report["unreadable_objects"]
        .as_array()
        .expect("list")
        .iter()
        .map(|o| o["key"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(named.contains(&"k04".to_string()), "{report}");

    let (code, repaired, stderr) = strata(&["fsck", "--json", "--repair"], &data);
    assert_eq!(code, Some(0), "{repaired} {stderr}");
    let quarantined = repaired["repair"]["quarantined"].to_string();
    assert!(quarantined.contains("k04"), "{repaired}");
    let (code, report, _) = fsck(&data);
    assert_eq!(code, Some(0), "still not clean after --repair: {report}");

    // The damaged objects fail with an error; all the others serve their bytes.
    server.start_again();
    let c = common::sdk_client(&server);
    for (key, body) in &live {
        let got = c.get_object().bucket("data").key(key).send().await;
        if named.contains(key) {
            let err = got.expect_err("quarantined object served");
            assert_eq!(
                err.raw_response().map(|r| r.status().as_u16()),
                Some(500),
                "{key}"
            );
        } else {
            let bytes = got
                .expect("get")
                .body
                .collect()
                .await
                .expect("body")
                .into_bytes();
            assert!(bytes.as_ref() == body.as_slice(), "{key}: wrong bytes");
        }
    }
}
