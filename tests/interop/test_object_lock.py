"""Object lock through boto3: buckets born locked, default retention,
per-version retention and legal hold, GOVERNANCE bypass, and the refusals
AWS gives. Every refusal leaves the locked version where it was."""

from __future__ import annotations

import datetime as dt

import pytest

from conftest import unique_bucket_name
from s3util import expect_client_error


def future(days=1):
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days)).replace(microsecond=0)


@pytest.fixture
def locked_bucket(s3):
    name = unique_bucket_name("lock")
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    yield name
    # Lift what can be lifted; COMPLIANCE versions stay until their date.
    for v in s3.list_object_versions(Bucket=name).get("Versions", []):
        try:
            s3.put_object_legal_hold(Bucket=name, Key=v["Key"], VersionId=v["VersionId"],
                                     LegalHold={"Status": "OFF"})
        except Exception:
            pass


def version_ids(s3, bucket, key):
    page = s3.list_object_versions(Bucket=bucket, Prefix=key)
    return [v["VersionId"] for v in page.get("Versions", [])]


def test_a_bucket_born_locked_versions_and_reports_its_lock(s3, locked_bucket):
    assert s3.get_bucket_versioning(Bucket=locked_bucket)["Status"] == "Enabled"
    conf = s3.get_object_lock_configuration(Bucket=locked_bucket)["ObjectLockConfiguration"]
    assert conf == {"ObjectLockEnabled": "Enabled"}
    expect_client_error(lambda: s3.put_bucket_versioning(
        Bucket=locked_bucket, VersioningConfiguration={"Status": "Suspended"}), "InvalidBucketState", 409)
    assert s3.get_bucket_versioning(Bucket=locked_bucket)["Status"] == "Enabled"


def test_lock_configuration_needs_versioning_and_valid_rules(s3, bucket):
    rule = {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}}
    expect_client_error(lambda: s3.put_object_lock_configuration(
        Bucket=bucket, ObjectLockConfiguration=rule), "InvalidBucketState", 409)
    expect_client_error(lambda: s3.get_object_lock_configuration(Bucket=bucket),
                        "ObjectLockConfigurationNotFoundError", 404)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for bad, code in [
        ({"Mode": "GOVERNANCE", "Days": 1, "Years": 1}, "MalformedXML"),
        ({"Mode": "GOVERNANCE", "Days": 0}, "InvalidRetentionPeriod"),
        ({"Mode": "governance", "Days": 1}, "MalformedXML"),
    ]:
        expect_client_error(lambda: s3.put_object_lock_configuration(
            Bucket=bucket, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled",
                                                    "Rule": {"DefaultRetention": bad}}), code, 400)
    expect_client_error(lambda: s3.get_object_lock_configuration(Bucket=bucket),
                        "ObjectLockConfigurationNotFoundError", 404)
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration=rule)
    assert s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"] == rule
    # The default retention applies to a version put without its own.
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    head = s3.head_object(Bucket=bucket, Key="k")
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert head["ObjectLockRetainUntilDate"] > dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=23)
    vid = head["VersionId"]
    expect_client_error(lambda: s3.delete_object(Bucket=bucket, Key="k", VersionId=vid), "AccessDenied", 403)
    s3.delete_object(Bucket=bucket, Key="k", VersionId=vid, BypassGovernanceRetention=True)


def test_retention_keeps_a_version_until_its_date(s3, locked_bucket):
    until = future()
    put = s3.put_object(Bucket=locked_bucket, Key="k", Body=b"kept", ObjectLockMode="COMPLIANCE",
                        ObjectLockRetainUntilDate=until)
    vid = put["VersionId"]
    assert vid, "a locked bucket gives version ids"
    head = s3.head_object(Bucket=locked_bucket, Key="k")
    assert head["ObjectLockMode"] == "COMPLIANCE" and head["ObjectLockRetainUntilDate"] == until
    expect_client_error(lambda: s3.delete_object(Bucket=locked_bucket, Key="k", VersionId=vid), "AccessDenied", 403)
    expect_client_error(lambda: s3.delete_object(
        Bucket=locked_bucket, Key="k", VersionId=vid, BypassGovernanceRetention=True), "AccessDenied", 403)
    # Shortening is refused; extending is allowed.
    expect_client_error(lambda: s3.put_object_retention(
        Bucket=locked_bucket, Key="k", VersionId=vid,
        Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until - dt.timedelta(hours=1)}), "AccessDenied", 403)
    expect_client_error(lambda: s3.put_object_retention(
        Bucket=locked_bucket, Key="k", VersionId=vid,
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until}, BypassGovernanceRetention=True), "AccessDenied", 403)
    later = until + dt.timedelta(days=1)
    s3.put_object_retention(Bucket=locked_bucket, Key="k", VersionId=vid,
                            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": later})
    got = s3.get_object_retention(Bucket=locked_bucket, Key="k", VersionId=vid)["Retention"]
    assert got == {"Mode": "COMPLIANCE", "RetainUntilDate": later}
    # A DELETE without a version id only stacks a marker above it.
    marker = s3.delete_object(Bucket=locked_bucket, Key="k")
    assert marker["DeleteMarker"] is True
    assert version_ids(s3, locked_bucket, "k") == [vid]
    s3.delete_object(Bucket=locked_bucket, Key="k", VersionId=marker["VersionId"])
    assert s3.get_object(Bucket=locked_bucket, Key="k")["Body"].read() == b"kept"


def test_governance_is_lifted_only_with_the_bypass(s3, locked_bucket):
    until = future()
    vid = s3.put_object(Bucket=locked_bucket, Key="g", Body=b"x", ObjectLockMode="GOVERNANCE",
                        ObjectLockRetainUntilDate=until)["VersionId"]
    expect_client_error(lambda: s3.put_object_retention(
        Bucket=locked_bucket, Key="g", VersionId=vid,
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until - dt.timedelta(hours=1)}), "AccessDenied", 403)
    expect_client_error(lambda: s3.put_object_retention(
        Bucket=locked_bucket, Key="g", VersionId=vid,
        Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until}), "AccessDenied", 403)
    res = s3.delete_objects(Bucket=locked_bucket, Delete={"Objects": [{"Key": "g", "VersionId": vid}]})
    assert res["Errors"][0]["Code"] == "AccessDenied" and res["Errors"][0]["VersionId"] == vid
    assert version_ids(s3, locked_bucket, "g") == [vid]
    s3.delete_objects(Bucket=locked_bucket, Delete={"Objects": [{"Key": "g", "VersionId": vid}]},
                      BypassGovernanceRetention=True)
    assert version_ids(s3, locked_bucket, "g") == []


def test_legal_hold_blocks_deletes_until_lifted(s3, locked_bucket):
    vid = s3.put_object(Bucket=locked_bucket, Key="h", Body=b"x", ObjectLockLegalHoldStatus="ON")["VersionId"]
    assert s3.get_object_legal_hold(Bucket=locked_bucket, Key="h")["LegalHold"] == {"Status": "ON"}
    expect_client_error(lambda: s3.delete_object(
        Bucket=locked_bucket, Key="h", VersionId=vid, BypassGovernanceRetention=True), "AccessDenied", 403)
    expect_client_error(lambda: s3.put_object_legal_hold(
        Bucket=locked_bucket, Key="h", LegalHold={"Status": "maybe"}), "MalformedXML", 400)
    assert version_ids(s3, locked_bucket, "h") == [vid]
    s3.put_object_legal_hold(Bucket=locked_bucket, Key="h", VersionId=vid, LegalHold={"Status": "OFF"})
    s3.delete_object(Bucket=locked_bucket, Key="h", VersionId=vid)
    assert version_ids(s3, locked_bucket, "h") == []


def test_multipart_uploads_carry_their_lock(s3, locked_bucket):
    up = s3.create_multipart_upload(Bucket=locked_bucket, Key="mp", ObjectLockMode="GOVERNANCE",
                                    ObjectLockRetainUntilDate=future())["UploadId"]
    part = s3.upload_part(Bucket=locked_bucket, Key="mp", UploadId=up, PartNumber=1, Body=b"p")
    vid = s3.complete_multipart_upload(Bucket=locked_bucket, Key="mp", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})["VersionId"]
    expect_client_error(lambda: s3.delete_object(Bucket=locked_bucket, Key="mp", VersionId=vid), "AccessDenied", 403)
    s3.delete_object(Bucket=locked_bucket, Key="mp", VersionId=vid, BypassGovernanceRetention=True)


def test_lock_calls_on_a_bucket_without_lock_are_refused(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    expect_client_error(lambda: s3.put_object_retention(
        Bucket=bucket, Key="k", Retention={"Mode": "GOVERNANCE", "RetainUntilDate": future()}), "InvalidRequest", 400)
    expect_client_error(lambda: s3.get_object_legal_hold(Bucket=bucket, Key="k"), "InvalidRequest", 400)
    expect_client_error(lambda: s3.put_object(Bucket=bucket, Key="k2", Body=b"x", ObjectLockMode="GOVERNANCE",
                                              ObjectLockRetainUntilDate=future()), "InvalidRequest", 400)
    assert "k2" not in {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
