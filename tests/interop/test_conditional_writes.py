"""Conditional writes through boto3: If-Match and If-None-Match on PUT,
CompleteMultipartUpload and CopyObject, If-Match on DELETE, each refusal
leaving the store unchanged; races of many clients decided in log order
(exactly one If-None-Match winner, no lost If-Match update); and a
repeated CompleteMultipartUpload answered with the same ETag, also after a
restart."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from botocore.exceptions import ClientError

from conftest import make_boto3_client
from s3util import expect_client_error


def body(s3, bucket, key) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def test_put_conditions(s3, bucket):
    expect_client_error(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"x", IfMatch="*"), "NoSuchKey", 404)
    expect_client_error(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"x", IfMatch='"abc"'), "NoSuchKey", 404)
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"first", IfNoneMatch="*")["ETag"]
    expect_client_error(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"x", IfNoneMatch="*"),
                        "PreconditionFailed", 412)
    expect_client_error(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"x", IfMatch='"0123"'),
                        "PreconditionFailed", 412)
    expect_client_error(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"x", IfNoneMatch=etag),
                        "PreconditionFailed", 412)
    assert body(s3, bucket, "k") == b"first", "refused writes change nothing"
    etag2 = s3.put_object(Bucket=bucket, Key="k", Body=b"second", IfMatch=etag)["ETag"]
    s3.put_object(Bucket=bucket, Key="k", Body=b"third", IfNoneMatch=etag)
    assert body(s3, bucket, "k") == b"third" and etag2 != etag


def test_conditions_see_delete_markers_as_no_object(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket, Key="k", Body=b"old")
    s3.delete_object(Bucket=bucket, Key="k")
    expect_client_error(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"x", IfMatch="*"), "NoSuchKey", 404)
    s3.put_object(Bucket=bucket, Key="k", Body=b"new", IfNoneMatch="*")
    assert body(s3, bucket, "k") == b"new"


def test_complete_and_copy_conditions(s3, bucket):
    def upload(key, data):
        up = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=1, Body=data)["ETag"]
        return up, {"Parts": [{"PartNumber": 1, "ETag": etag}]}

    up, parts = upload("mp", b"one")
    expect_client_error(lambda: s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=up, MultipartUpload=parts, IfMatch='"nope"'), "NoSuchKey", 404)
    done = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up, MultipartUpload=parts,
                                        IfNoneMatch="*")
    up2, parts2 = upload("mp", b"two")
    expect_client_error(lambda: s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=up2, MultipartUpload=parts2, IfNoneMatch="*"), "PreconditionFailed", 412)
    assert body(s3, bucket, "mp") == b"one"
    # The refused upload is still open, and completes with the right ETag.
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up2, MultipartUpload=parts2,
                                 IfMatch=done["ETag"])
    assert body(s3, bucket, "mp") == b"two"
    # CopyObject's destination conditions (raw headers: boto3 has no parameters for them).
    s3.put_object(Bucket=bucket, Key="src", Body=b"source")

    def copy_with(headers):
        def add(request, **_):
            for name, value in headers.items():
                request.headers[name] = value
        s3.meta.events.register_first("before-sign.s3.CopyObject", add)
        try:
            return s3.copy_object(Bucket=bucket, Key="mp", CopySource={"Bucket": bucket, "Key": "src"})
        finally:
            s3.meta.events.unregister("before-sign.s3.CopyObject", add)

    expect_client_error(lambda: copy_with({"If-None-Match": "*"}), "PreconditionFailed", 412)
    assert body(s3, bucket, "mp") == b"two"
    copy_with({"If-Match": s3.head_object(Bucket=bucket, Key="mp")["ETag"]})
    assert body(s3, bucket, "mp") == b"source"


def test_conditional_deletes(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"x")["ETag"]
    expect_client_error(lambda: s3.delete_object(Bucket=bucket, Key="k", IfMatch='"other"'), "PreconditionFailed", 412)
    assert body(s3, bucket, "k") == b"x"
    s3.delete_object(Bucket=bucket, Key="k", IfMatch=etag)
    expect_client_error(lambda: s3.head_object(Bucket=bucket, Key="k"), "404", 404)
    # Nothing there: a conditional delete succeeds and deletes nothing.
    s3.delete_object(Bucket=bucket, Key="k", IfMatch='"whatever"')
    s3.put_object(Bucket=bucket, Key="b", Body=b"y")
    res = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "b", "ETag": '"other"'}]})
    assert res["Errors"][0]["Code"] == "PreconditionFailed"
    assert body(s3, bucket, "b") == b"y"


def test_racing_if_none_match_has_exactly_one_winner(s3, bucket, server):
    """32 clients race If-None-Match: * on four keys, eight each."""
    clients = [make_boto3_client(server) for _ in range(8)]
    barrier = threading.Barrier(32)

    def attempt(i):
        client = clients[i % len(clients)]
        key = f"race-{i % 4}"
        data = f"writer-{i}".encode()
        barrier.wait()
        try:
            client.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
            return key, data
        except ClientError as e:
            assert e.response["Error"]["Code"] in ("PreconditionFailed", "ConditionalRequestConflict"), e.response
            return key, None

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(attempt, range(32)))
    for k in range(4):
        winners = [data for key, data in results if key == f"race-{k}" and data is not None]
        assert len(winners) == 1, f"race-{k}: {len(winners)} winners"
        assert body(s3, bucket, f"race-{k}") == winners[0]


def test_if_match_chains_lose_no_update(s3, bucket, server):
    """16 clients each add 5 to a counter with read, If-Match write, retry:
    the counter ends at exactly 80."""
    s3.put_object(Bucket=bucket, Key="counter", Body=b"0")

    def worker(_):
        client = make_boto3_client(server)
        done = 0
        while done < 5:
            got = client.get_object(Bucket=bucket, Key="counter")
            value = int(got["Body"].read())
            try:
                client.put_object(Bucket=bucket, Key="counter", Body=str(value + 1).encode(), IfMatch=got["ETag"])
                done += 1
            except ClientError as e:
                assert e.response["Error"]["Code"] in ("PreconditionFailed", "ConditionalRequestConflict"), e.response

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(worker, range(16)))
    assert body(s3, bucket, "counter") == b"80"


def test_a_repeated_complete_answers_the_same_and_makes_no_version(server_factory):
    srv = server_factory("complete-retry")
    s3 = make_boto3_client(srv)
    bucket = "retry"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    up = s3.create_multipart_upload(Bucket=bucket, Key="k", ChecksumAlgorithm="SHA256")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="k", UploadId=up, PartNumber=1, Body=b"p" * 1000,
                          ChecksumAlgorithm="SHA256")
    parts = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"], "ChecksumSHA256": part["ChecksumSHA256"]}]}
    first = s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=up, MultipartUpload=parts)
    again = s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=up, MultipartUpload=parts)
    assert (again["ETag"], again["VersionId"], again["ChecksumSHA256"]) == \
        (first["ETag"], first["VersionId"], first["ChecksumSHA256"])
    srv.stop()
    srv.start()
    s3 = make_boto3_client(srv)
    after = s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=up, MultipartUpload=parts)
    assert (after["ETag"], after["VersionId"]) == (first["ETag"], first["VersionId"])
    assert len(s3.list_object_versions(Bucket=bucket)["Versions"]) == 1
    # Once another version is current, the upload is gone, as in S3.
    s3.put_object(Bucket=bucket, Key="k", Body=b"newer")
    expect_client_error(lambda: s3.complete_multipart_upload(
        Bucket=bucket, Key="k", UploadId=up, MultipartUpload=parts), "NoSuchUpload", 404)
