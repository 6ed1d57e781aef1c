"""aws-chunked uploads, hand-signed (no Python SDK sends them over plain HTTP,
but minio-go does - Milvus - and the AWS SDKs do over TLS):

  STREAMING-AWS4-HMAC-SHA256-PAYLOAD          signed chunks (minio-go)
  STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER  signed chunks + signed checksum trailer
  STREAMING-UNSIGNED-PAYLOAD-TRAILER          plain chunks + checksum trailer (AWS SDKs' default)

The signer is checked against AWS's published examples in
test_signer_selfcheck.py."""

from __future__ import annotations

import pytest

import s3util
from s3util import (KiB, MiB, Signer, etag_multipart, etag_single, expect_client_error,
                    rand_bytes, raw_request, s3_path)

MODES = {
    "signed": s3util.STREAMING_SIGNED,
    "signed-trailer": s3util.STREAMING_SIGNED_TRAILER,
    "unsigned-trailer": s3util.STREAMING_UNSIGNED_TRAILER,
}


def streaming_request(server, method, path, query, data, mode, *, chunk=64 * KiB,
                      trailer_value=None, corrupt_at=None, decoded_length=None,
                      algorithm="CRC32", chunked_transfer=False):
    """An aws-chunked request. chunked_transfer: also HTTP chunked framing and no
    Content-Length, exactly like the AWS C++ SDK (Arrow) over plain HTTP."""
    signer = Signer(server.access_key, server.secret_key)
    amz_date = s3util.amz_now()
    payload = MODES[mode]
    trailers = None
    headers = {"host": server.netloc, "content-encoding": "aws-chunked",
               "content-type": "application/octet-stream",
               "x-amz-decoded-content-length": str(len(data) if decoded_length is None else decoded_length)}
    if mode != "signed":
        name = f"x-amz-checksum-{algorithm.lower()}"
        headers["x-amz-trailer"] = name
        trailers = [(name, trailer_value or s3util.checksum_b64(algorithm, data))]
    chunk_signer = signer if mode.startswith("signed") else None
    # The encoded length does not depend on signature values: measure with a dummy seed.
    probe = s3util.aws_chunked_body(data, chunk, signer=chunk_signer, amz_date=amz_date,
                                    seed_signature="0" * 64, trailers=trailers)
    if not chunked_transfer:
        headers["content-length"] = str(len(probe))
    headers, seed = signer.sign(method, path, query, headers, payload, amz_date=amz_date)
    body = s3util.aws_chunked_body(data, chunk, signer=chunk_signer, amz_date=amz_date,
                                   seed_signature=seed, trailers=trailers)
    assert len(body) == len(probe)
    if corrupt_at is not None:
        # Flip one byte of chunk data (after the first chunk header).
        i = body.index(b"\r\n") + 2 + corrupt_at
        body = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1:]
    return raw_request(server.host, server.port, method, path, query=query, headers=headers, body=body,
                       chunked_transfer=chunked_transfer)


@pytest.mark.parametrize("mode", list(MODES))
def test_streaming_put_object(server, s3, bucket, mode):
    data = rand_bytes(200 * KiB + 77, mode)
    r = streaming_request(server, "PUT", s3_path(bucket, f"stream/{mode}"), [], data, mode)
    assert r.status == 200, r
    assert r.headers.get("etag") == etag_single(data)
    got = s3.get_object(Bucket=bucket, Key=f"stream/{mode}")
    assert got["Body"].read() == data
    assert got["ContentLength"] == len(data)
    assert got.get("ContentEncoding") in (None, ""), "aws-chunked is a transfer detail, not stored"
    if mode != "signed":
        head = s3.head_object(Bucket=bucket, Key=f"stream/{mode}", ChecksumMode="ENABLED")
        assert head.get("ChecksumCRC32") == s3util.checksum_b64("CRC32", data)


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"])
def test_unsigned_trailer_algorithms(server, s3, bucket, algorithm):
    data = rand_bytes(100 * KiB + 1, algorithm)
    r = streaming_request(server, "PUT", s3_path(bucket, "k"), [], data, "unsigned-trailer", algorithm=algorithm)
    assert r.status == 200, r
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == data
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert head.get("Checksum" + algorithm) == s3util.checksum_b64(algorithm, data)


def test_arrow_shaped_upload(server, s3, bucket):
    """What pyarrow 26 (AWS C++ SDK 1.11) sends over http: CreateMultipartUpload,
    then UploadPart with Transfer-Encoding: chunked (no Content-Length),
    Content-Encoding: aws-chunked, STREAMING-UNSIGNED-PAYLOAD-TRAILER and an
    x-amz-checksum-crc64nvme trailer; also as a plain PutObject."""
    parts = [rand_bytes(5 * MiB + 1, "arrow-1"), rand_bytes(300 * KiB, "arrow-2")]
    uid = s3.create_multipart_upload(Bucket=bucket, Key="arrow")["UploadId"]
    done = []
    for n, p in enumerate(parts, 1):
        r = streaming_request(server, "PUT", s3_path(bucket, "arrow"), [("partNumber", str(n)), ("uploadId", uid)],
                              p, "unsigned-trailer", algorithm="CRC64NVME", chunked_transfer=True,
                              chunk=64 * KiB)
        assert r.status == 200, r
        assert r.headers.get("etag") == etag_single(p)
        done.append({"PartNumber": n, "ETag": r.headers["etag"]})
    s3.complete_multipart_upload(Bucket=bucket, Key="arrow", UploadId=uid, MultipartUpload={"Parts": done})
    assert s3.get_object(Bucket=bucket, Key="arrow")["Body"].read() == b"".join(parts)

    data = rand_bytes(1000, "arrow-put")
    r = streaming_request(server, "PUT", s3_path(bucket, "arrow-put"), [], data, "unsigned-trailer",
                          algorithm="CRC64NVME", chunked_transfer=True)
    assert r.status == 200, r
    assert s3.get_object(Bucket=bucket, Key="arrow-put")["Body"].read() == data


@pytest.mark.parametrize("mode", list(MODES))
def test_streaming_small_and_empty(server, s3, bucket, mode):
    for n in (0, 1, 8 * KiB):
        data = rand_bytes(n, f"{mode}-{n}")
        r = streaming_request(server, "PUT", s3_path(bucket, f"s{n}"), [], data, mode)
        assert r.status == 200, (n, r)
        assert s3.get_object(Bucket=bucket, Key=f"s{n}")["Body"].read() == data


@pytest.mark.parametrize("mode", ["signed", "unsigned-trailer"])
def test_streaming_upload_part(server, s3, bucket, mode):
    parts = [rand_bytes(5 * MiB, f"{mode}-1"), rand_bytes(1 * MiB + 3, f"{mode}-2")]
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    done = []
    for n, p in enumerate(parts, 1):
        r = streaming_request(server, "PUT", s3_path(bucket, "mp"),
                              [("partNumber", str(n)), ("uploadId", uid)], p, mode, chunk=1 * MiB)
        assert r.status == 200, r
        assert r.headers.get("etag") == etag_single(p)
        done.append({"PartNumber": n, "ETag": r.headers["etag"]})
    out = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid, MultipartUpload={"Parts": done})
    assert out["ETag"] == etag_multipart(parts)
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"".join(parts)


def test_streaming_bad_chunk_signature_rejected(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="existing", Body=b"old")
    data = rand_bytes(150 * KiB, "badsig")
    for key in ("fresh", "existing"):
        r = streaming_request(server, "PUT", s3_path(bucket, key), [], data, "signed", corrupt_at=100)
        assert r.status == 403, r
        assert r.code == "SignatureDoesNotMatch"
    expect_client_error(lambda: s3.head_object(Bucket=bucket, Key="fresh"), "404", 404)
    assert s3.get_object(Bucket=bucket, Key="existing")["Body"].read() == b"old"


@pytest.mark.parametrize("mode", ["signed-trailer", "unsigned-trailer"])
def test_streaming_bad_trailer_checksum_rejected(server, s3, bucket, mode):
    s3.put_object(Bucket=bucket, Key="existing", Body=b"old")
    data = rand_bytes(100 * KiB, "badcrc")
    wrong = s3util.checksum_b64("CRC32", b"other data")
    for key in ("fresh", "existing"):
        r = streaming_request(server, "PUT", s3_path(bucket, key), [], data, mode, trailer_value=wrong)
        assert r.status == 400, r
        assert r.code == "BadDigest"
    expect_client_error(lambda: s3.head_object(Bucket=bucket, Key="fresh"), "404", 404)
    assert s3.get_object(Bucket=bucket, Key="existing")["Body"].read() == b"old"


@pytest.mark.parametrize("mode", ["signed", "unsigned-trailer"])
def test_streaming_decoded_length_mismatch_rejected(server, s3, bucket, mode):
    data = rand_bytes(100 * KiB, "declen")
    for declared in (len(data) + 1, len(data) - 1):
        r = streaming_request(server, "PUT", s3_path(bucket, "k"), [], data, mode, decoded_length=declared)
        assert 400 <= r.status < 500, (declared, r)
    expect_client_error(lambda: s3.head_object(Bucket=bucket, Key="k"), "404", 404)
