"""Durability across SIGKILL: every acknowledged write is there after a
restart on the same data file, with its exact bytes and metadata; deletes stay
deleted; nothing half-written ever appears. Uses its own server (its own data
file), so the shared server is never killed."""

from __future__ import annotations

import threading
import time
import urllib.request

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from conftest import make_boto3_client, purge_bucket, unique_bucket_name
from s3util import KiB, MiB, etag_multipart, etag_single, expect_client_error, rand_bytes, split_parts


@pytest.fixture(scope="module")
def rsrv(server_factory):
    return server_factory("restart")


def client(srv, **kw):
    """A fresh client: no pooled connection survives a restart."""
    return make_boto3_client(srv, **kw)


@pytest.fixture
def rbucket(rsrv, request):
    if not rsrv.alive():  # an earlier test failed between a kill and its restart
        rsrv.start()
    name = unique_bucket_name(request.node.name)
    client(rsrv).create_bucket(Bucket=name)
    yield name
    if rsrv.alive():
        purge_bucket(client(rsrv), name)


def write_fixture_set(s3, bucket):
    """Write a varied set of objects; return what must be found afterwards."""
    expect = {}      # key -> (bytes, extra head fields to compare)
    for i in range(40):
        data = rand_bytes(1 * KiB + i * 487, f"small-{i}")
        s3.put_object(Bucket=bucket, Key=f"small/{i:03d}", Body=data,
                      Metadata={"idx": str(i)}, ContentType=f"application/x-small-{i % 3}")
        expect[f"small/{i:03d}"] = (data, {"Metadata": {"idx": str(i)},
                                           "ContentType": f"application/x-small-{i % 3}"})
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    expect["empty"] = (b"", {})
    big = rand_bytes(3 * MiB + 1, "big")
    s3.put_object(Bucket=bucket, Key="big", Body=big)
    expect["big"] = (big, {})

    mp = rand_bytes(12 * MiB + 5, "mp")
    parts = split_parts(mp, 5 * MiB)
    uid = s3.create_multipart_upload(Bucket=bucket, Key="multipart", Metadata={"mp": "yes"})["UploadId"]
    done = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=bucket, Key="multipart", UploadId=uid,
                                                     PartNumber=n, Body=p)["ETag"]}
            for n, p in enumerate(parts, 1)]
    s3.complete_multipart_upload(Bucket=bucket, Key="multipart", UploadId=uid, MultipartUpload={"Parts": done})
    expect["multipart"] = (mp, {"ETag": etag_multipart(parts), "Metadata": {"mp": "yes"}})

    s3.put_object(Bucket=bucket, Key="overwritten", Body=b"version one, longer than two")
    s3.put_object(Bucket=bucket, Key="overwritten", Body=b"version two")
    expect["overwritten"] = (b"version two", {})

    s3.copy_object(Bucket=bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "big"})
    expect["copied"] = (big, {})

    s3.put_object(Bucket=bucket, Key="deleted", Body=b"short-lived")
    s3.delete_object(Bucket=bucket, Key="deleted")
    s3.put_object(Bucket=bucket, Key="batch-deleted/1", Body=b"1")
    s3.put_object(Bucket=bucket, Key="batch-deleted/2", Body=b"2")
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "batch-deleted/1"}, {"Key": "batch-deleted/2"}]})
    deleted = ["deleted", "batch-deleted/1", "batch-deleted/2"]
    return expect, deleted


def verify(s3, bucket, expect, deleted, last_modified=None):
    listed = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        listed.update({o["Key"]: o for o in page.get("Contents", [])})
    assert sorted(listed) == sorted(expect), "listing after restart differs"
    for key, (data, fields) in expect.items():
        got = s3.get_object(Bucket=bucket, Key=key)
        assert got["Body"].read() == data, key
        assert got["ContentLength"] == len(data), key
        assert listed[key]["Size"] == len(data), key
        assert got["ETag"] == fields.get("ETag", etag_single(data)), key
        assert listed[key]["ETag"] == got["ETag"], key
        for f, v in fields.items():
            assert got[f] == v, (key, f)
        if last_modified is not None:
            assert got["LastModified"] == last_modified[key], f"{key}: LastModified changed over a restart"
    for key in deleted:
        expect_client_error(lambda: s3.head_object(Bucket=bucket, Key=key), "404", 404)
    return {k: s3.head_object(Bucket=bucket, Key=k)["LastModified"] for k in expect}


def test_acknowledged_writes_survive_sigkill(rsrv, rbucket):
    s3 = client(rsrv)
    expect, deleted = write_fixture_set(s3, rbucket)

    # Buckets: one created empty, one created and deleted again.
    empty_bucket = unique_bucket_name("restart-empty")
    s3.create_bucket(Bucket=empty_bucket)
    gone_bucket = unique_bucket_name("restart-gone")
    s3.create_bucket(Bucket=gone_bucket)
    s3.put_object(Bucket=gone_bucket, Key="x", Body=b"x")
    s3.delete_object(Bucket=gone_bucket, Key="x")
    s3.delete_bucket(Bucket=gone_bucket)

    # Multipart uploads: one in progress (parts acknowledged), one aborted.
    pending = [rand_bytes(5 * MiB, "pending-1"), rand_bytes(1 * MiB + 1, "pending-2")]
    pending_id = s3.create_multipart_upload(Bucket=rbucket, Key="pending-mpu")["UploadId"]
    pending_done = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=rbucket, Key="pending-mpu", UploadId=pending_id,
                                                             PartNumber=n, Body=p)["ETag"]}
                    for n, p in enumerate(pending, 1)]
    aborted_id = s3.create_multipart_upload(Bucket=rbucket, Key="aborted-mpu")["UploadId"]
    s3.upload_part(Bucket=rbucket, Key="aborted-mpu", UploadId=aborted_id, PartNumber=1, Body=b"p")
    s3.abort_multipart_upload(Bucket=rbucket, Key="aborted-mpu", UploadId=aborted_id)

    lm = verify(s3, rbucket, expect, deleted)

    rsrv.restart(kill9=True)
    assert rsrv.data_path.exists()
    s3 = client(rsrv)
    verify(s3, rbucket, expect, deleted, last_modified=lm)
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert rbucket in names and empty_bucket in names
    assert gone_bucket not in names
    expect_client_error(lambda: s3.head_bucket(Bucket=gone_bucket), "404", 404)

    uploads = s3.list_multipart_uploads(Bucket=rbucket).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("pending-mpu", pending_id)]
    parts = s3.list_parts(Bucket=rbucket, Key="pending-mpu", UploadId=pending_id)["Parts"]
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in parts] == \
        [(d["PartNumber"], len(b), d["ETag"]) for d, b in zip(pending_done, pending)]
    expect_client_error(lambda: s3.list_parts(Bucket=rbucket, Key="aborted-mpu", UploadId=aborted_id),
                        "NoSuchUpload", 404)
    s3.complete_multipart_upload(Bucket=rbucket, Key="pending-mpu", UploadId=pending_id,
                                 MultipartUpload={"Parts": pending_done})
    expect["pending-mpu"] = (b"".join(pending), {"ETag": etag_multipart(pending)})

    # Graceful restart, then two kills in a row with no writes in between.
    rsrv.restart(kill9=False)
    lm = verify(client(rsrv), rbucket, expect, deleted)
    rsrv.restart(kill9=True)
    rsrv.restart(kill9=True)
    s3 = client(rsrv)
    verify(s3, rbucket, expect, deleted, last_modified=lm)
    s3.delete_bucket(Bucket=empty_bucket)


def test_writes_after_recovery_survive_another_kill(rsrv, rbucket):
    s3 = client(rsrv)
    first = {f"gen1/{i}": rand_bytes(10 * KiB + i, f"gen1-{i}") for i in range(20)}
    for k, v in first.items():
        s3.put_object(Bucket=rbucket, Key=k, Body=v)
    rsrv.restart(kill9=True)

    s3 = client(rsrv)
    second = {f"gen2/{i}": rand_bytes(20 * KiB + i, f"gen2-{i}") for i in range(20)}
    for k, v in second.items():
        s3.put_object(Bucket=rbucket, Key=k, Body=v)
    # Overwrite and delete some first-generation keys after recovery.
    s3.put_object(Bucket=rbucket, Key="gen1/0", Body=b"rewritten after recovery")
    first["gen1/0"] = b"rewritten after recovery"
    s3.delete_object(Bucket=rbucket, Key="gen1/1")
    del first["gen1/1"]
    rsrv.restart(kill9=True)

    s3 = client(rsrv)
    everything = {**first, **second}
    verify(s3, rbucket, {k: (v, {}) for k, v in everything.items()}, ["gen1/1"])
    # And the store still takes writes.
    s3.put_object(Bucket=rbucket, Key="gen3", Body=b"after two kills")
    assert s3.get_object(Bucket=rbucket, Key="gen3")["Body"].read() == b"after two kills"


def test_sigkill_during_concurrent_writes(rsrv, rbucket):
    """Kill the server while PUTs and DELETEs are in flight: every acknowledged
    one holds after restart; an unacknowledged PUT is either absent or complete
    (never a prefix or someone else's bytes)."""
    s3 = client(rsrv)
    predelete = [f"pre/{i:03d}" for i in range(200)]
    for k in predelete:
        s3.put_object(Bucket=rbucket, Key=k, Body=k.encode())

    acked: dict[str, bytes] = {}
    attempted: dict[str, bytes] = {}
    deleted_acked: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[str] = []

    def writer(tag, sizes):
        c = client(rsrv, connect_timeout=2, read_timeout=15)
        i = 0
        while not stop.is_set():
            key = f"w/{tag}/{i:05d}"
            data = rand_bytes(sizes[i % len(sizes)], key)
            with lock:
                attempted[key] = data
            try:
                r = c.put_object(Bucket=rbucket, Key=key, Body=data)
            except (ClientError, BotoCoreError, OSError):
                return
            if r["ETag"] != etag_single(data):
                errors.append(f"{key}: ETag {r['ETag']} != {etag_single(data)}")
            with lock:
                acked[key] = data
            i += 1

    def deleter():
        c = client(rsrv, connect_timeout=2, read_timeout=15)
        for k in predelete:
            if stop.is_set():
                return
            try:
                c.delete_object(Bucket=rbucket, Key=k)
            except (ClientError, BotoCoreError, OSError):
                return
            with lock:
                deleted_acked.add(k)
            time.sleep(0.002)

    threads = [threading.Thread(target=writer, args=("small", [1 * KiB, 7 * KiB, 33 * KiB])),
               threading.Thread(target=writer, args=("medium", [256 * KiB, 1 * MiB + 3])),
               threading.Thread(target=writer, args=("tiny", [0, 1, 100]))]
    threads.append(threading.Thread(target=deleter))
    for t in threads:
        t.start()
    time.sleep(1.5)
    rsrv.kill9()
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    assert len(acked) >= 10, f"only {len(acked)} PUTs acknowledged in 1.5 s; server too slow to test"

    rsrv.start()
    s3 = client(rsrv)
    for key, data in acked.items():
        got = s3.get_object(Bucket=rbucket, Key=key)["Body"].read()
        assert got == data, f"acknowledged {key} lost or changed ({len(got)} of {len(data)} bytes)"
    listed = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=rbucket, Prefix="w/"):
        listed.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
    assert set(acked) <= set(listed)
    for key in set(listed) - set(acked):
        # In flight at the kill: allowed to exist only whole.
        assert key in attempted, f"{key} listed but never written"
        got = s3.get_object(Bucket=rbucket, Key=key)["Body"].read()
        assert got == attempted[key], f"unacknowledged {key} is partial ({len(got)} bytes)"
        assert listed[key] == len(attempted[key])
    remaining_pre = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=rbucket, Prefix="pre/"):
        remaining_pre |= {o["Key"] for o in page.get("Contents", [])}
    assert not (deleted_acked & remaining_pre), f"acknowledged deletes came back: {sorted(deleted_acked & remaining_pre)[:5]}"
    for k in remaining_pre:
        assert s3.get_object(Bucket=rbucket, Key=k)["Body"].read() == k.encode()


def live_bytes(srv) -> int:
    """The server's strata_device_live_bytes gauge."""
    text = urllib.request.urlopen(f"{srv.endpoint_url}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith("strata_device_live_bytes "):
            return int(float(line.split()[1]))
    raise AssertionError(f"no strata_device_live_bytes in:\n{text}")


def test_live_bytes_follow_writes_deletes_and_recovery(rsrv, rbucket):
    """The live-bytes gauge (what the device would hold with every dead
    record compacted away) grows by what a write stores, falls back when
    it is deleted, and recovery counts the same."""
    s3 = client(rsrv)
    start = live_bytes(rsrv)
    data = rand_bytes(4 * MiB, "live")  # random: stored as it is
    s3.put_object(Bucket=rbucket, Key="live", Body=data)
    grown = live_bytes(rsrv) - start
    assert len(data) <= grown < len(data) + 64 * KiB, grown
    s3.put_object(Bucket=rbucket, Key="same", Body=data)  # deduplicated
    assert live_bytes(rsrv) - start < len(data) + 128 * KiB
    s3.delete_object(Bucket=rbucket, Key="live")
    s3.delete_object(Bucket=rbucket, Key="same")
    after_delete = live_bytes(rsrv)
    assert after_delete - start < 64 * KiB, after_delete - start
    rsrv.restart(kill9=True)
    assert live_bytes(rsrv) == after_delete
