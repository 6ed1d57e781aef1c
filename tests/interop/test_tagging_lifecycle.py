"""Object and bucket tags, and lifecycle rules: their validation, the
x-amz-expiration header, and the worker applying them on a server whose
lifecycle day is two seconds long (locked versions stay, a restart in the
middle loses nothing)."""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest

from conftest import make_boto3_client, unique_bucket_name
from s3util import expect_client_error

DAY_S = 2


def tagset(tags: dict) -> dict:
    return {"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}


def get_tags(s3, bucket, key, **kw) -> dict:
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key, **kw)["TagSet"]}


def test_object_tags_round_trip_with_s3s_limits(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="foo=bar&bar&a%20b=c")
    assert get_tags(s3, bucket, "k") == {"a b": "c", "bar": "", "foo": "bar"}
    assert s3.head_object(Bucket=bucket, Key="k")["ResponseMetadata"]["HTTPHeaders"]["x-amz-tagging-count"] == "3"
    assert s3.get_object(Bucket=bucket, Key="k")["TagCount"] == 3
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagset({str(i): "v" for i in range(10)}))
    assert len(get_tags(s3, bucket, "k")) == 10
    for bad in [{str(i): "v" for i in range(11)}, {"k" * 129: "v"}, {"k": "v" * 257}]:
        expect_client_error(lambda: s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagset(bad)), "InvalidTag", 400)
    assert len(get_tags(s3, bucket, "k")) == 10, "a refused tag set changes nothing"
    expect_client_error(lambda: s3.put_object(Bucket=bucket, Key="k2", Body=b"x", Tagging="a=" + "v" * 257),
                        "InvalidTag", 400)
    s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert get_tags(s3, bucket, "k") == {}
    expect_client_error(lambda: s3.get_object_tagging(Bucket=bucket, Key="missing"), "NoSuchKey", 404)


def test_tags_belong_to_versions_and_follow_copies(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"1", Tagging="v=1")["VersionId"]
    s3.put_object(Bucket=bucket, Key="k", Body=b"2", Tagging="v=2")
    s3.put_object_tagging(Bucket=bucket, Key="k", VersionId=v1, Tagging=tagset({"v": "one"}))
    assert get_tags(s3, bucket, "k", VersionId=v1) == {"v": "one"}
    assert get_tags(s3, bucket, "k") == {"v": "2"}
    s3.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "k"})
    assert get_tags(s3, bucket, "copied") == {"v": "2"}
    s3.copy_object(Bucket=bucket, Key="replaced", CopySource={"Bucket": bucket, "Key": "k"},
                   TaggingDirective="REPLACE", Tagging="new=yes")
    assert get_tags(s3, bucket, "replaced") == {"new": "yes"}
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", Tagging="from=create")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=1, Body=b"p")
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert get_tags(s3, bucket, "mp") == {"from": "create"}
    marker = s3.delete_object(Bucket=bucket, Key="k")["VersionId"]
    expect_client_error(lambda: s3.put_object_tagging(Bucket=bucket, Key="k", VersionId=marker,
                                                      Tagging=tagset({"a": "b"})), "MethodNotAllowed", 405)


def test_bucket_tags(s3, bucket):
    expect_client_error(lambda: s3.get_bucket_tagging(Bucket=bucket), "NoSuchTagSet", 404)
    s3.put_bucket_tagging(Bucket=bucket, Tagging=tagset({"team": "vectors"}))
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "team", "Value": "vectors"}]
    expect_client_error(lambda: s3.put_bucket_tagging(Bucket=bucket, Tagging=tagset({"k": "v" * 300})), "InvalidTag", 400)
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "team", "Value": "vectors"}]
    s3.delete_bucket_tagging(Bucket=bucket)
    expect_client_error(lambda: s3.get_bucket_tagging(Bucket=bucket), "NoSuchTagSet", 404)


RULE = {"ID": "r1", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 1}}


def test_lifecycle_configuration_is_validated_and_echoed(s3, bucket):
    expect_client_error(lambda: s3.get_bucket_lifecycle_configuration(Bucket=bucket),
                        "NoSuchLifecycleConfiguration", 404)
    rules = [RULE, {"ID": "r2", "Status": "Disabled", "Prefix": "old/", "Expiration": {"Days": 3}},
             {"ID": "nc", "Status": "Enabled", "Filter": {"And": {"Prefix": "v/", "Tags": [{"Key": "a", "Value": "b"}],
                                                                   "ObjectSizeGreaterThan": 10}},
              "NoncurrentVersionExpiration": {"NoncurrentDays": 2, "NewerNoncurrentVersions": 1}},
             {"ID": "mpu", "Status": "Enabled", "Filter": {"Prefix": ""},
              "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    assert s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"] == rules
    for bad, code in [
        ({**RULE, "ID": "x" * 256}, "InvalidArgument"),
        ({**RULE, "Status": "enabled"}, "MalformedXML"),
        ({**RULE, "Expiration": {"Days": 0}}, "InvalidArgument"),
        ({**RULE, "Expiration": {"Date": dt.datetime(2030, 1, 1, 12, tzinfo=dt.timezone.utc)}}, "InvalidArgument"),
        ({**RULE, "Transitions": [{"Days": 1, "StorageClass": "GLACIER"}]}, "InvalidRequest"),
    ]:
        expect_client_error(lambda: s3.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": [bad]}), code, 400)
    expect_client_error(lambda: s3.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": [RULE, RULE]}), "InvalidArgument", 400)
    assert s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"] == rules, "refusals change nothing"
    s3.delete_bucket_lifecycle(Bucket=bucket)
    expect_client_error(lambda: s3.get_bucket_lifecycle_configuration(Bucket=bucket),
                        "NoSuchLifecycleConfiguration", 404)


def test_expiration_header_names_the_rule_and_the_midnight(s3, bucket):
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [RULE]})
    put = s3.put_object(Bucket=bucket, Key="logs/a", Body=b"x")
    head = s3.head_object(Bucket=bucket, Key="logs/a")
    for answer in (put, head):
        header = answer["ResponseMetadata"]["HTTPHeaders"]["x-amz-expiration"]
        m = re.fullmatch(r'expiry-date="(.+)", rule-id="r1"', header)
        assert m, header
        expiry = dt.datetime.strptime(m.group(1), "%a, %d %b %Y %H:%M:%S GMT")
        assert (expiry.hour, expiry.minute, expiry.second) == (0, 0, 0)
        assert dt.timedelta(days=1) <= expiry - dt.datetime.utcnow() <= dt.timedelta(days=2)
    s3.put_object(Bucket=bucket, Key="other", Body=b"x")
    assert "x-amz-expiration" not in s3.head_object(Bucket=bucket, Key="other")["ResponseMetadata"]["HTTPHeaders"]


def wait_for(predicate, timeout_s=20 * DAY_S, what="lifecycle"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    pytest.fail(f"{what}: not done after {timeout_s} s")


@pytest.fixture(scope="module")
def short_days(server_factory):
    """A server whose lifecycle day lasts DAY_S seconds."""
    return server_factory("lifecycle", ["--lifecycle-day-s", str(DAY_S), "--lifecycle-interval-ms", "300"])


def test_lifecycle_worker_expires_what_is_due_and_keeps_locked_versions(short_days):
    s3 = make_boto3_client(short_days)
    plain, versioned = unique_bucket_name("lc-plain"), unique_bucket_name("lc-ver")
    s3.create_bucket(Bucket=plain)
    s3.create_bucket(Bucket=versioned, ObjectLockEnabledForBucket=True)
    for k in ["logs/1", "logs/2", "keep/1"]:
        s3.put_object(Bucket=plain, Key=k, Body=b"x")
    up = s3.create_multipart_upload(Bucket=plain, Key="logs/upload")["UploadId"]
    s3.put_bucket_lifecycle_configuration(Bucket=plain, LifecycleConfiguration={"Rules": [
        RULE, {"ID": "mpu", "Status": "Enabled", "Filter": {"Prefix": "logs/"},
               "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]})
    old = s3.put_object(Bucket=versioned, Key="v/k", Body=b"old")["VersionId"]
    locked = s3.put_object(Bucket=versioned, Key="v/locked", Body=b"locked", ObjectLockLegalHoldStatus="ON")["VersionId"]
    s3.put_object(Bucket=versioned, Key="v/locked", Body=b"newer")
    s3.put_object(Bucket=versioned, Key="v/k", Body=b"new")
    s3.put_bucket_lifecycle_configuration(Bucket=versioned, LifecycleConfiguration={"Rules": [
        {"ID": "nc", "Status": "Enabled", "Filter": {"Prefix": "v/"}, "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
        {"ID": "dm", "Status": "Enabled", "Filter": {"Prefix": "v/"}, "Expiration": {"ExpiredObjectDeleteMarker": True}}]})

    def plain_keys():
        return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=plain).get("Contents", []))

    wait_for(lambda: plain_keys() == ["keep/1"], what="expiring logs/")
    # A pass may expire the objects before it reaches the uploads.
    wait_for(lambda: "Uploads" not in s3.list_multipart_uploads(Bucket=plain),
             what="aborting the incomplete upload")
    expect_client_error(lambda: s3.list_parts(Bucket=plain, Key="logs/upload", UploadId=up), "NoSuchUpload", 404)

    def noncurrent_gone():
        ids = [v["VersionId"] for v in s3.list_object_versions(Bucket=versioned, Prefix="v/k")["Versions"]]
        return old not in ids
    wait_for(noncurrent_gone, what="noncurrent expiration")
    # The locked noncurrent version stays; the current ones are untouched.
    time.sleep(3 * DAY_S)
    locked_ids = [v["VersionId"] for v in s3.list_object_versions(Bucket=versioned, Prefix="v/locked")["Versions"]]
    assert locked in locked_ids and len(locked_ids) == 2
    assert s3.get_object(Bucket=versioned, Key="v/k")["Body"].read() == b"new"
    s3.put_object_legal_hold(Bucket=versioned, Key="v/locked", VersionId=locked, LegalHold={"Status": "OFF"})
    wait_for(lambda: len(s3.list_object_versions(Bucket=versioned, Prefix="v/locked")["Versions"]) == 1,
             what="expiring a version once unlocked")
    # A delete marker with nothing under it is removed.
    s3.delete_object(Bucket=versioned, Key="v/k")
    wait_for(lambda: "DeleteMarkers" not in s3.list_object_versions(Bucket=versioned, Prefix="v/k")
             and "Versions" not in s3.list_object_versions(Bucket=versioned, Prefix="v/k"),
             what="expired object delete marker")


def test_lifecycle_worker_survives_a_restart_mid_pass(short_days):
    """Killed with kill -9 once the first of 200 expirations is visible
    (often mid-pass): after a restart every due key is expired, the others
    stay, and the passes that run again over expired keys add no second
    delete marker."""
    s3 = make_boto3_client(short_days)
    bucket = unique_bucket_name("lc-restart")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for i in range(200):
        s3.put_object(Bucket=bucket, Key=f"logs/{i:03}", Body=b"x")
    s3.put_object(Bucket=bucket, Key="keep", Body=b"kept")
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [RULE]})

    def markers():
        out = []
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            out += page.get("DeleteMarkers", [])
        return out

    wait_for(lambda: len(markers()) > 0, what="first expirations")
    short_days.kill9()
    short_days.start()
    s3 = make_boto3_client(short_days)
    wait_for(lambda: len(markers()) >= 200, what="expirations after the restart")
    time.sleep(3 * DAY_S)
    per_key = {}
    for m in markers():
        per_key[m["Key"]] = per_key.get(m["Key"], 0) + 1
    assert len(per_key) == 200 and set(per_key.values()) == {1}, "one marker per expired key"
    assert s3.get_object(Bucket=bucket, Key="keep")["Body"].read() == b"kept"
