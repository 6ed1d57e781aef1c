//! The real server driven by the AWS Rust SDK with its default checksum
//! behaviour (CRC32 trailers over aws-chunked uploads), including a SIGKILL
//! restart and a graceful SIGTERM.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumMode, CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier,
};
use aws_sdk_s3::Client;
use common::Server;
use md5::{Digest, Md5};

fn client(server: &Server) -> Client {
    common::sdk_client(server)
}

fn data(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

async fn get_bytes(c: &Client, bucket: &str, key: &str, range: Option<&str>) -> Vec<u8> {
    let mut req = c.get_object().bucket(bucket).key(key);
    if let Some(r) = range {
        req = req.range(r);
    }
    req.send()
        .await
        .expect("get")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_sdk_round_trip_and_restart() {
    let mut server = Server::start();
    let c = client(&server);
    c.create_bucket()
        .bucket("sdk")
        .send()
        .await
        .expect("create bucket");
    // us-east-1 answers 200 to the owner re-creating a bucket, as AWS does
    // there (other regions: BucketAlreadyOwnedByYou).
    c.create_bucket()
        .bucket("sdk")
        .send()
        .await
        .expect("create the same bucket again");

    // Single PUTs with the SDK's default checksum, small and multi-chunk.
    let small = data(1, 4096);
    let large = data(2, 3 << 20 | 12345);
    let put = c
        .put_object()
        .bucket("sdk")
        .key("small")
        .body(ByteStream::from(small.clone()))
        .send()
        .await
        .expect("put");
    assert_eq!(
        put.e_tag().unwrap().trim_matches('"'),
        hex::encode(Md5::digest(&small))
    );
    let put = c
        .put_object()
        .bucket("sdk")
        .key("dir/large")
        .content_type("application/x-test")
        .metadata("origin", "sdk")
        .body(ByteStream::from(large.clone()))
        .send()
        .await
        .expect("put large");
    // Hashed on the MD5 lanes thread (bodies from 256 KiB).
    assert_eq!(
        put.e_tag().unwrap().trim_matches('"'),
        hex::encode(Md5::digest(&large))
    );
    assert_eq!(get_bytes(&c, "sdk", "small", None).await, small);
    assert_eq!(get_bytes(&c, "sdk", "dir/large", None).await, large);
    assert_eq!(
        get_bytes(&c, "sdk", "dir/large", Some("bytes=1000000-2100000")).await,
        large[1_000_000..=2_100_000]
    );
    assert_eq!(
        get_bytes(&c, "sdk", "dir/large", Some("bytes=-10")).await,
        large[large.len() - 10..]
    );

    let head = c
        .head_object()
        .bucket("sdk")
        .key("dir/large")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_length(), Some(large.len() as i64));
    assert_eq!(head.content_type(), Some("application/x-test"));
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("origin"))
            .map(String::as_str),
        Some("sdk")
    );
    assert!(
        head.checksum_crc32().is_some() || head.checksum_crc64_nvme().is_some(),
        "default checksum was not kept: {head:?}"
    );

    // Multipart: two 5 MiB parts and a short last one.
    let parts: Vec<Vec<u8>> = vec![data(3, 5 << 20), data(4, 5 << 20), data(5, 1000)];
    let upload = c
        .create_multipart_upload()
        .bucket("sdk")
        .key("mp")
        .send()
        .await
        .expect("create mpu");
    let id = upload.upload_id().unwrap().to_string();
    let mut done = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let r = c
            .upload_part()
            .bucket("sdk")
            .key("mp")
            .upload_id(&id)
            .part_number(i as i32 + 1)
            .body(ByteStream::from(part.clone()))
            .send()
            .await
            .expect("upload part");
        done.push(
            CompletedPart::builder()
                .part_number(i as i32 + 1)
                .e_tag(r.e_tag().unwrap())
                .build(),
        );
    }
    let listed = c
        .list_parts()
        .bucket("sdk")
        .key("mp")
        .upload_id(&id)
        .send()
        .await
        .expect("list parts");
    assert_eq!(listed.parts().len(), 3);
    let complete = c
        .complete_multipart_upload()
        .bucket("sdk")
        .key("mp")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .expect("complete");
    assert!(
        complete.e_tag().unwrap().ends_with("-3\""),
        "{:?}",
        complete.e_tag()
    );
    let whole: Vec<u8> = parts.concat();
    assert_eq!(get_bytes(&c, "sdk", "mp", None).await, whole);

    let list = c
        .list_objects_v2()
        .bucket("sdk")
        .prefix("dir/")
        .send()
        .await
        .expect("list");
    assert_eq!(
        list.contents()
            .iter()
            .map(|o| o.key().unwrap())
            .collect::<Vec<_>>(),
        vec!["dir/large"]
    );

    // SIGKILL and restart: everything acknowledged is there.
    server.kill_and_restart();
    let c = client(&server);
    assert_eq!(get_bytes(&c, "sdk", "small", None).await, small);
    assert_eq!(get_bytes(&c, "sdk", "dir/large", None).await, large);
    assert_eq!(get_bytes(&c, "sdk", "mp", None).await, whole);

    let delete = Delete::builder()
        .objects(ObjectIdentifier::builder().key("small").build().unwrap())
        .objects(ObjectIdentifier::builder().key("mp").build().unwrap())
        .build()
        .unwrap();
    let r = c
        .delete_objects()
        .bucket("sdk")
        .delete(delete)
        .send()
        .await
        .expect("delete objects");
    assert_eq!(r.deleted().len(), 2);
    let err = c
        .get_object()
        .bucket("sdk")
        .key("small")
        .send()
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("NoSuchKey"), "{err:?}");

    // Graceful stop writes a checkpoint and exits 0; the next start uses it.
    assert_eq!(server.terminate(), Some(0), "log:\n{}", server.log());
    assert!(
        server.log().contains("final checkpoint written"),
        "{}",
        server.log()
    );
    server.kill_and_restart();
    let c = client(&server);
    assert_eq!(get_bytes(&c, "sdk", "dir/large", None).await, large);
    assert!(c
        .head_object()
        .bucket("sdk")
        .key("mp")
        .send()
        .await
        .is_err());
}

/// A full device answers PUTs with 507 XMinioStorageFull, keeps serving
/// reads, and still accepts deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_device_gives_507_and_keeps_reading() {
    let server = Server::start_with(
        vec![
            "--size-bytes".into(),
            (8u64 << 20).to_string(),
            "--segment-size-bytes".into(),
            (1u64 << 20).to_string(),
        ],
        |_| Vec::new(),
    );
    let c = client(&server);
    c.create_bucket()
        .bucket("full")
        .send()
        .await
        .expect("create bucket");
    let mut stored = Vec::new();
    let mut refusal = None;
    for i in 0..100u8 {
        let body = common::random_bytes(i as u64, 300_000);
        match c
            .put_object()
            .bucket("full")
            .key(format!("k{i}"))
            .body(ByteStream::from(body.clone()))
            .send()
            .await
        {
            Ok(_) => stored.push((format!("k{i}"), body)),
            Err(e) => {
                refusal = Some(e);
                break;
            }
        }
    }
    let refusal = refusal.expect("the device never filled up");
    let raw = refusal.raw_response().expect("an HTTP answer");
    assert_eq!(raw.status().as_u16(), 507, "{refusal:?}");
    assert!(
        format!("{refusal:?}").contains("XMinioStorageFull"),
        "{refusal:?}"
    );
    assert!(stored.len() >= 5, "only {} objects fit", stored.len());
    for (key, body) in &stored {
        assert_eq!(&get_bytes(&c, "full", key, None).await, body);
    }
    c.delete_object()
        .bucket("full")
        .key(&stored[0].0)
        .send()
        .await
        .expect("delete on a full device");
}

/// Invariant 7: bodies stream through the server in bounded chunks. A
/// 256 MiB PUT and GET must not raise the server's peak memory anywhere
/// near the object's size (with the chunk cache held small; it is bounded
/// by its own setting).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_in_bounded_memory() {
    let server = Server::start_with(
        vec!["--cache-bytes".into(), (16u64 << 20).to_string()],
        |_| Vec::new(),
    );
    let c = client(&server);
    c.create_bucket()
        .bucket("big")
        .send()
        .await
        .expect("bucket");
    let body = common::random_bytes(11, 256 << 20);
    c.put_object()
        .bucket("big")
        .key("k")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("put");
    let after_put = server.peak_rss_bytes();
    assert!(
        after_put < 128 << 20,
        "server peaked at {} MiB writing a 256 MiB object",
        after_put >> 20
    );
    let got = get_bytes(&c, "big", "k", None).await;
    assert!(got == body, "bytes differ");
    let peak = server.peak_rss_bytes();
    assert!(peak > 0, "could not read the server's memory");
    assert!(
        peak < 128 << 20,
        "server peaked at {} MiB for a 256 MiB object",
        peak >> 20
    );
}
