"""Versioning through boto3: bucket states, version ids, delete markers, the
null version, ListObjectVersions paging, batch deletes of versions, copies
from a version. Every negative case checks that the store is unchanged."""

from __future__ import annotations

import pytest

from s3util import expect_client_error


def enable(s3, bucket, status="Enabled"):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})


def body(s3, bucket, key, **kw) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key, **kw)["Body"].read()


def test_versioning_states_and_version_ids(s3, bucket):
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"unversioned")
    assert "VersionId" not in put, "an unversioned bucket shows no version id"
    enable(s3, bucket)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    ids = [s3.put_object(Bucket=bucket, Key="k", Body=f"v{i}".encode())["VersionId"] for i in range(3)]
    assert len(set(ids)) == 3
    for i, vid in enumerate(ids):
        got = s3.get_object(Bucket=bucket, Key="k", VersionId=vid)
        assert got["Body"].read() == f"v{i}".encode() and got["VersionId"] == vid
    assert body(s3, bucket, "k", VersionId="null") == b"unversioned"
    assert body(s3, bucket, "k") == b"v2"
    listed = s3.list_object_versions(Bucket=bucket)["Versions"]
    assert [v["VersionId"] for v in listed] == [ids[2], ids[1], ids[0], "null"]
    assert [v["IsLatest"] for v in listed] == [True, False, False, False]
    # Bad and unknown version ids.
    expect_client_error(lambda: s3.get_object(Bucket=bucket, Key="k", VersionId="nonsense"), "InvalidArgument", 400)
    expect_client_error(lambda: s3.get_object(Bucket=bucket, Key="k", VersionId="00000000000fffff"), "NoSuchVersion", 404)
    expect_client_error(lambda: s3.put_bucket_versioning(
        Bucket=bucket, VersioningConfiguration={"Status": "Sometimes"}), "MalformedXML", 400)
    assert body(s3, bucket, "k") == b"v2", "unchanged after refusals"


def test_delete_markers_hide_and_their_removal_restores(s3, bucket):
    enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    deleted = s3.delete_object(Bucket=bucket, Key="k")
    assert deleted["DeleteMarker"] is True
    marker = deleted["VersionId"]
    err = expect_client_error(lambda: s3.get_object(Bucket=bucket, Key="k"), "NoSuchKey", 404)
    assert err["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"] == "true"
    err = expect_client_error(lambda: s3.head_object(Bucket=bucket, Key="k"), "404", 404)
    assert err["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"] == "true"
    # The marker by its id is not an object.
    expect_client_error(lambda: s3.get_object(Bucket=bucket, Key="k", VersionId=marker), "MethodNotAllowed", 405)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    assert [(m["VersionId"], m["IsLatest"]) for m in s3.list_object_versions(Bucket=bucket)["DeleteMarkers"]] == [(marker, True)]
    # Markers stack; removing them all brings the object back.
    m2 = s3.delete_object(Bucket=bucket, Key="k")["VersionId"]
    for m in (m2, marker):
        gone = s3.delete_object(Bucket=bucket, Key="k", VersionId=m)
        assert gone["DeleteMarker"] is True and gone["VersionId"] == m
    assert body(s3, bucket, "k") == b"one"
    s3.delete_object(Bucket=bucket, Key="k", VersionId=v1)
    assert "Versions" not in s3.list_object_versions(Bucket=bucket)
    # A plain 404 says there was no marker.
    err = expect_client_error(lambda: s3.head_object(Bucket=bucket, Key="k"), "404", 404)
    assert err["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"] == "false"


def test_suspended_bucket_writes_the_null_version(s3, bucket):
    enable(s3, bucket)
    real = s3.put_object(Bucket=bucket, Key="k", Body=b"real")["VersionId"]
    enable(s3, bucket, "Suspended")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"null-1")
    assert "VersionId" not in put
    s3.put_object(Bucket=bucket, Key="k", Body=b"null-2")
    listed = s3.list_object_versions(Bucket=bucket)["Versions"]
    assert [v["VersionId"] for v in listed] == ["null", real], "the null version is replaced, not added"
    assert body(s3, bucket, "k") == b"null-2"
    # DELETE writes a null delete marker in its place.
    s3.delete_object(Bucket=bucket, Key="k")
    page = s3.list_object_versions(Bucket=bucket)
    assert [v["VersionId"] for v in page["Versions"]] == [real]
    assert [m["VersionId"] for m in page["DeleteMarkers"]] == ["null"]
    s3.delete_object(Bucket=bucket, Key="k", VersionId="null")
    assert body(s3, bucket, "k") == b"real"


def test_list_object_versions_pages_by_key_and_version(s3, bucket):
    enable(s3, bucket)
    expected = []
    for key in ["a", "b/1", "b/2", "c"]:
        for i in range(3):
            expected.append((key, s3.put_object(Bucket=bucket, Key=key, Body=f"{key}{i}".encode())["VersionId"]))
    # Each key's versions newest first.
    want = []
    for key in ["a", "b/1", "b/2", "c"]:
        want += [(k, v) for k, v in reversed(expected) if k == key]
    seen = []
    kw = {}
    while True:
        page = s3.list_object_versions(Bucket=bucket, MaxKeys=2, **kw)
        seen += [(v["Key"], v["VersionId"]) for v in page.get("Versions", [])]
        if not page["IsTruncated"]:
            break
        kw = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page["NextVersionIdMarker"]}
    assert seen == want
    page = s3.list_object_versions(Bucket=bucket, Delimiter="/", Prefix="")
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["b/"]
    assert {v["Key"] for v in page["Versions"]} == {"a", "c"}
    page = s3.list_object_versions(Bucket=bucket, Prefix="b/", KeyMarker="b/1")
    assert {v["Key"] for v in page["Versions"]} == {"b/2"}
    expect_client_error(lambda: s3.list_object_versions(Bucket=bucket, VersionIdMarker="null"), "InvalidArgument", 400)


def test_batch_delete_of_versions_and_markers(s3, bucket):
    enable(s3, bucket)
    ids = [s3.put_object(Bucket=bucket, Key="k", Body=f"{i}".encode())["VersionId"] for i in range(3)]
    res = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k", "VersionId": v} for v in ids]})
    assert sorted(d["VersionId"] for d in res["Deleted"]) == sorted(ids)
    assert "Errors" not in res
    # Versions already gone are reported deleted, not as errors.
    again = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k", "VersionId": v} for v in ids]})
    assert len(again["Deleted"]) == 3 and "Errors" not in again
    # Without a version id a marker is made, and named.
    made = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "new"}]})["Deleted"][0]
    assert made["DeleteMarker"] is True
    listed = s3.list_object_versions(Bucket=bucket)["DeleteMarkers"]
    assert made["DeleteMarkerVersionId"] == listed[0]["VersionId"]
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "new", "VersionId": made["DeleteMarkerVersionId"]}]})
    assert "DeleteMarkers" not in s3.list_object_versions(Bucket=bucket)
    s3.delete_bucket(Bucket=bucket)


def test_copy_from_a_version(s3, bucket_factory):
    src, dst = bucket_factory("src"), bucket_factory("dst")
    enable(s3, src)
    v1 = s3.put_object(Bucket=src, Key="k", Body=b"first", ContentType="text/x-first")["VersionId"]
    s3.put_object(Bucket=src, Key="k", Body=b"second")
    out = s3.copy_object(Bucket=dst, Key="copy", CopySource={"Bucket": src, "Key": "k", "VersionId": v1})
    assert out["CopySourceVersionId"] == v1
    assert body(s3, dst, "copy") == b"first"
    assert s3.head_object(Bucket=dst, Key="copy")["ContentType"] == "text/x-first"
    # An older version copied over the current one is allowed, and makes a version.
    again = s3.copy_object(Bucket=src, Key="k", CopySource={"Bucket": src, "Key": "k", "VersionId": v1})
    assert again["VersionId"] not in (v1,)
    assert body(s3, src, "k") == b"first"
    marker = s3.delete_object(Bucket=src, Key="k")["VersionId"]
    expect_client_error(lambda: s3.copy_object(Bucket=dst, Key="x", CopySource={"Bucket": src, "Key": "k"}), "NoSuchKey", 404)
    expect_client_error(lambda: s3.copy_object(
        Bucket=dst, Key="x", CopySource={"Bucket": src, "Key": "k", "VersionId": marker}), "InvalidRequest", 400)
    assert "x" not in {o["Key"] for o in s3.list_objects_v2(Bucket=dst).get("Contents", [])}


def test_multipart_complete_makes_a_version(s3, bucket):
    enable(s3, bucket)
    ids = []
    for i in range(2):
        up = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
        part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=1, Body=f"part{i}".encode())
        done = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up,
                                            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
        ids.append(done["VersionId"])
    assert [v["VersionId"] for v in s3.list_object_versions(Bucket=bucket)["Versions"]] == ids[::-1]


def test_bucket_with_versions_cannot_be_deleted(s3, bucket_factory):
    b = bucket_factory("keep")
    enable(s3, b)
    s3.put_object(Bucket=b, Key="k", Body=b"x")
    s3.delete_object(Bucket=b, Key="k")
    expect_client_error(lambda: s3.delete_bucket(Bucket=b), "BucketNotEmpty", 409)
    assert len(s3.list_object_versions(Bucket=b)["Versions"]) == 1
