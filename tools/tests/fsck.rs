//! `strata fsck` on real data files: clean after a graceful stop (and the
//! checkpoint agrees), refused while a server holds the file, and a flipped
//! byte in an object's data is found and named.

mod common;

use std::process::Command;

use aws_sdk_s3::primitives::ByteStream;
use common::Server;

fn fsck(data: &std::path::Path) -> (Option<i32>, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["fsck", "--json"])
        .arg(data)
        .output()
        .expect("run fsck");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let report = serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null);
    (
        out.status.code(),
        report,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
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
