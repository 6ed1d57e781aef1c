"""The rest of the object surface through boto3: GetObjectAttributes with
part pagination, GET and HEAD of one part, multipart checksums (COMPOSITE
and FULL_OBJECT) on Complete, GET, HEAD and ListParts, ListBuckets
pagination, and the aws CLI driving the new operations."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from conftest import make_boto3_client, unique_bucket_name
from s3util import MiB, expect_client_error, rand_bytes


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def multipart(s3, bucket, key, parts, **create):
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, **create)
    uid = up["UploadId"]
    listed = []
    algo = create.get("ChecksumAlgorithm")
    for n, data in enumerate(parts, 1):
        extra = {"ChecksumAlgorithm": algo} if algo else {}
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=n, Body=data, **extra)
        listed.append({"PartNumber": n, "ETag": r["ETag"]})
    return up, uid, listed


def test_attributes_and_parts_of_a_multipart_object(s3, bucket):
    parts = [rand_bytes(5 * MiB, f"p{i}") for i in range(5)] + [b"tail"]
    up, uid, listed = multipart(s3, bucket, "mp", parts, ChecksumAlgorithm="SHA256")
    assert up["ChecksumAlgorithm"] == "SHA256"
    done = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid, MultipartUpload={"Parts": listed})
    digests = b"".join(hashlib.sha256(p).digest() for p in parts)
    composite = f"{b64(hashlib.sha256(digests).digest())}-{len(parts)}"
    assert done["ChecksumSHA256"] == composite and done["ChecksumType"] == "COMPOSITE"
    attrs = s3.get_object_attributes(Bucket=bucket, Key="mp", MaxParts=2, PartNumberMarker=3,
                                     ObjectAttributes=["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"])
    assert attrs["ETag"] == done["ETag"].strip('"')
    assert attrs["ObjectSize"] == sum(map(len, parts)) and attrs["StorageClass"] == "STANDARD"
    assert attrs["Checksum"]["ChecksumSHA256"] == composite
    op = attrs["ObjectParts"]
    assert op["TotalPartsCount"] == 6 and op["IsTruncated"] is True and op["NextPartNumberMarker"] == 5
    assert [(p["PartNumber"], p["Size"], p["ChecksumSHA256"]) for p in op["Parts"]] == [
        (4, 5 * MiB, b64(hashlib.sha256(parts[3]).digest())),
        (5, 5 * MiB, b64(hashlib.sha256(parts[4]).digest()))]
    for n in (1, 6):
        got = s3.get_object(Bucket=bucket, Key="mp", PartNumber=n, ChecksumMode="ENABLED")
        assert got["Body"].read() == parts[n - 1]
        assert got["PartsCount"] == 6 and got["ETag"] == done["ETag"]
        assert got["ChecksumSHA256"] == b64(hashlib.sha256(parts[n - 1]).digest())
        head = s3.head_object(Bucket=bucket, Key="mp", PartNumber=n)
        assert head["ContentLength"] == len(parts[n - 1]) and head["PartsCount"] == 6
    expect_client_error(lambda: s3.get_object(Bucket=bucket, Key="mp", PartNumber=7), "InvalidPart", 400)
    head = s3.head_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == composite and head["ChecksumType"] == "COMPOSITE"


def test_single_objects_have_one_part_and_no_part_list(s3, bucket):
    data = b"A" * 1024
    put = s3.put_object(Bucket=bucket, Key="one", Body=data, ChecksumAlgorithm="SHA256")
    attrs = s3.get_object_attributes(Bucket=bucket, Key="one", ObjectAttributes=["ObjectParts", "Checksum", "ETag"])
    assert "ObjectParts" not in attrs
    assert attrs["Checksum"]["ChecksumSHA256"] == put["ChecksumSHA256"]
    assert s3.get_object(Bucket=bucket, Key="one", PartNumber=1)["Body"].read() == data
    expect_client_error(lambda: s3.get_object(Bucket=bucket, Key="one", PartNumber=2), "InvalidPart", 400)
    expect_client_error(lambda: s3.get_object_attributes(Bucket=bucket, Key="missing", ObjectAttributes=["ETag"]),
                        "NoSuchKey", 404)


def test_full_object_crc_is_the_crc_of_the_whole(s3, bucket):
    parts = [rand_bytes(5 * MiB, "c1"), rand_bytes(3 * MiB, "c2")]
    up, uid, listed = multipart(s3, bucket, "crc", parts, ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT")
    assert up["ChecksumType"] == "FULL_OBJECT"
    whole = b64(zlib.crc32(b"".join(parts)).to_bytes(4, "big"))
    listing = s3.list_parts(Bucket=bucket, Key="crc", UploadId=uid)
    assert listing["ChecksumAlgorithm"] == "CRC32"
    assert [p["ChecksumCRC32"] for p in listing["Parts"]] == [b64(zlib.crc32(p).to_bytes(4, "big")) for p in parts]
    expect_client_error(lambda: s3.complete_multipart_upload(
        Bucket=bucket, Key="crc", UploadId=uid, MultipartUpload={"Parts": listed}, ChecksumCRC32="AAAAAA=="),
        "BadDigest", 400)
    done = s3.complete_multipart_upload(Bucket=bucket, Key="crc", UploadId=uid, MultipartUpload={"Parts": listed},
                                        ChecksumCRC32=whole)
    assert done["ChecksumCRC32"] == whole and done["ChecksumType"] == "FULL_OBJECT"
    got = s3.get_object(Bucket=bucket, Key="crc", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == whole and got["Body"].read() == b"".join(parts)


def test_list_buckets_pages(server_factory):
    srv = server_factory("list-buckets")
    s3 = make_boto3_client(srv)
    assert s3.list_buckets(MaxBuckets=1)["Buckets"] == []
    names = sorted(f"page-{i}" for i in range(5))
    for name in names:
        s3.create_bucket(Bucket=name)
    s3.create_bucket(Bucket="other")
    seen, token = [], None
    while True:
        kw = {"ContinuationToken": token} if token else {}
        page = s3.list_buckets(MaxBuckets=2, Prefix="page-", **kw)
        seen += [b["Name"] for b in page["Buckets"]]
        token = page.get("ContinuationToken")
        if not token:
            break
    assert seen == names
    assert len(s3.list_buckets()["Buckets"]) == 6


AWS = Path(sys.executable).parent / "aws"


def test_aws_cli_drives_versions_locks_tags_and_lifecycle(server, tmp_path):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key,
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true", "AWS_MAX_ATTEMPTS": "1"}

    def aws(*args, ok=True):
        p = subprocess.run([str(AWS), "--endpoint-url", server.endpoint_url, "--output", "json", "s3api", *args],
                           env=env, capture_output=True, text=True, timeout=120)
        assert (p.returncode == 0) == ok, f"aws s3api {' '.join(args)}: {p.returncode}\n{p.stdout}\n{p.stderr}"
        return json.loads(p.stdout) if ok and p.stdout.strip() else p.stderr

    bucket = unique_bucket_name("cli-versions")
    aws("create-bucket", "--bucket", bucket, "--object-lock-enabled-for-bucket")
    assert aws("get-bucket-versioning", "--bucket", bucket)["Status"] == "Enabled"
    body = tmp_path / "body"
    body.write_bytes(b"cli")
    v1 = aws("put-object", "--bucket", bucket, "--key", "k", "--body", str(body), "--tagging", "a=1",
             "--object-lock-legal-hold-status", "ON")["VersionId"]
    assert aws("get-object-tagging", "--bucket", bucket, "--key", "k")["TagSet"] == [{"Key": "a", "Value": "1"}]
    assert aws("get-object-legal-hold", "--bucket", bucket, "--key", "k")["LegalHold"]["Status"] == "ON"
    err = aws("delete-object", "--bucket", bucket, "--key", "k", "--version-id", v1, ok=False)
    assert "AccessDenied" in err
    aws("put-object-legal-hold", "--bucket", bucket, "--key", "k", "--legal-hold", "Status=OFF")
    marker = aws("delete-object", "--bucket", bucket, "--key", "k")
    assert marker["DeleteMarker"] is True
    listed = aws("list-object-versions", "--bucket", bucket)
    assert [v["VersionId"] for v in listed["Versions"]] == [v1]
    assert listed["DeleteMarkers"][0]["VersionId"] == marker["VersionId"]
    aws("put-bucket-lifecycle-configuration", "--bucket", bucket, "--lifecycle-configuration",
        json.dumps({"Rules": [{"ID": "r", "Status": "Enabled", "Filter": {"Prefix": "tmp/"},
                               "Expiration": {"Days": 7}}]}))
    assert aws("get-bucket-lifecycle-configuration", "--bucket", bucket)["Rules"][0]["ID"] == "r"
    aws("put-bucket-tagging", "--bucket", bucket, "--tagging", "TagSet=[{Key=team,Value=x}]")
    assert aws("get-bucket-tagging", "--bucket", bucket)["TagSet"] == [{"Key": "team", "Value": "x"}]
    attrs = aws("get-object-attributes", "--bucket", bucket, "--key", "k", "--version-id", v1,
                "--object-attributes", "ObjectSize")
    assert attrs["ObjectSize"] == 3
    for v in (v1, marker["VersionId"]):
        aws("delete-object", "--bucket", bucket, "--key", "k", "--version-id", v)
    aws("delete-bucket", "--bucket", bucket)
